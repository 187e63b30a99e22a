//! Where the config file is: `--config PATH`, else `$WORMHOLE_CONFIG`, else
//! `$XDG_CONFIG_HOME/wormhole/config.toml` (an absolute `XDG_CONFIG_HOME` only, as the XDG spec
//! says), else `~/.config/wormhole/config.toml`. A file named explicitly must exist; the default
//! one is optional.
//!
//! Only locating and loading live here (the parser is `config_file.rs`, the precedence of its
//! values `args.rs`); the environment is read through the lookup function the caller passes.

use std::path::{Path, PathBuf};

use crate::config_file::{ConfigError, FileConfig, load};

/// Env var naming the config file.
pub const ENV_CONFIG: &str = "WORMHOLE_CONFIG";

/// The config file of a run, if there is one, and its contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The file that was read (`None`: no file).
    pub path: Option<PathBuf>,
    /// Where the default file would be when none was found (for `--show-config`).
    pub looked_at: Option<PathBuf>,
    /// Its values (all unset without a file).
    pub values: FileConfig,
}

/// The default config file's path from `XDG_CONFIG_HOME` or `HOME`.
pub fn default_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(xdg) = env("XDG_CONFIG_HOME").filter(|x| Path::new(x).is_absolute()) {
        return Some(Path::new(&xdg).join("wormhole").join("config.toml"));
    }
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".config").join("wormhole").join("config.toml"))
}

/// Find and read the config file (`flag` is `--config`).
pub fn load_config(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
    let explicit = flag
        .map(Path::to_path_buf)
        .or_else(|| env(ENV_CONFIG).filter(|v| !v.is_empty()).map(PathBuf::from));
    if let Some(path) = explicit {
        let values = load(&path)?;
        return Ok(Loaded {
            path: Some(path),
            looked_at: None,
            values,
        });
    }
    let Some(path) = default_path(env) else {
        return Ok(Loaded::default());
    };
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Loaded {
            path: None,
            looked_at: Some(path),
            values: FileConfig::default(),
        }),
        _ => {
            let values = load(&path)?;
            Ok(Loaded {
                path: Some(path),
                looked_at: None,
                values,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn default_locations() {
        let xdg = |k: &str| match k {
            "XDG_CONFIG_HOME" => Some("/x".to_owned()),
            "HOME" => Some("/h".to_owned()),
            _ => None,
        };
        assert_eq!(default_path(&xdg), Some(PathBuf::from("/x/wormhole/config.toml")));
        let relative = |k: &str| match k {
            "XDG_CONFIG_HOME" => Some("rel".to_owned()),
            "HOME" => Some("/h".to_owned()),
            _ => None,
        };
        assert_eq!(
            default_path(&relative),
            Some(PathBuf::from("/h/.config/wormhole/config.toml"))
        );
        assert_eq!(default_path(&|_| None), None);
    }

    #[test]
    fn explicit_files_must_exist_default_ones_need_not() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().to_string_lossy().into_owned();
        let env = |k: &str| (k == "HOME").then(|| home.clone());
        let l = load_config(None, &env).unwrap();
        assert_eq!(l.path, None);
        assert!(l.looked_at.is_some());
        let missing = d.path().join("nope.toml");
        assert!(matches!(
            load_config(Some(&missing), &env),
            Err(ConfigError::Read { .. })
        ));
        let dir = d.path().join(".config/wormhole");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), "qr = false\n").unwrap();
        let l = load_config(None, &env).unwrap();
        assert_eq!(l.values.qr, Some(false));
        assert_eq!(l.path, Some(dir.join("config.toml")));
    }
}
