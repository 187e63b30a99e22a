//! The `--service` and `--client` arguments, in fowl 26.8's forms, so the same words work with
//! either program:
//!
//! - `--service NAME[:PORT][:listen=PORT][:address=ADDR]`: the service runs on this side, at
//!   ADDR:PORT (127.0.0.1 by default); the peer listens for it (on `listen=`, if given).
//! - `--client NAME[:PORT][:bind=ADDR][:remote-connect=PORT]`: we allow the peer's service NAME
//!   and listen for it on PORT (chosen by the system if absent) at ADDR (127.0.0.1); with
//!   `remote-connect=` the peer must connect to that port on its side.
//!
//! Owns: the syntax and its errors. Must not: resolve names or touch sockets.

/// Why a `--service` / `--client` argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// No service name.
    #[error("{0:?}: a service needs a name (NAME[:PORT]…)")]
    NoName(String),
    /// More than three `:`.
    #[error("{0:?}: too many ':' (at most NAME:PORT:KEY=VALUE:KEY=VALUE)")]
    TooManyParts(String),
    /// Not a port.
    #[error("{0:?} is not a port: expected a number from 1 to 65535")]
    BadPort(String),
    /// A `KEY=VALUE` part with a key this argument does not take.
    #[error("{part:?}: {flag} accepts only {allowed}")]
    BadKey {
        /// The part.
        part: String,
        /// `--service` or `--client`.
        flag: &'static str,
        /// The keys it takes.
        allowed: &'static str,
    },
    /// An IPv6 address in brackets (fowl's syntax has no room for them either).
    #[error("{0:?}: IPv6 addresses cannot be written in this syntax; use an IPv4 address or a host name")]
    Ipv6(String),
}

/// `--service`: a service that runs on this side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The service's name (the peer must allow the same name with `--client`).
    pub name: String,
    /// Where the service listens here (`None`: a free port is chosen and shown).
    pub connect_port: Option<u16>,
    /// The port the peer should listen on (`listen=`).
    pub remote_listen_port: Option<u16>,
    /// The host the service runs on (`address=`; default 127.0.0.1).
    pub connect_address: Option<String>,
}

/// `--client`: a peer's service we allow, and listen for here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    /// The service's name.
    pub name: String,
    /// The port we listen on (`None`: chosen by the system).
    pub listen_port: Option<u16>,
    /// The address we listen on (`bind=`; default 127.0.0.1).
    pub bind: Option<String>,
    /// The port the peer must connect to on its side (`remote-connect=`).
    pub remote_connect_port: Option<u16>,
}

fn to_port(s: &str) -> Result<Option<u16>, SpecError> {
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<u16>() {
        Ok(p) if p != 0 => Ok(Some(p)),
        _ => Err(SpecError::BadPort(s.to_owned())),
    }
}

/// An argument cut into its parts.
struct Parts {
    name: String,
    port: Option<u16>,
    /// The `KEY=VALUE` parts.
    keyed: Vec<(String, String)>,
    /// Parts without `=`.
    bare: Vec<String>,
}

/// NAME, PORT and the `KEY=VALUE` parts.
fn split(arg: &str) -> Result<Parts, SpecError> {
    if arg.contains('[') || arg.contains(']') {
        return Err(SpecError::Ipv6(arg.to_owned()));
    }
    let parts: Vec<&str> = arg.split(':').collect();
    if parts.len() > 4 {
        return Err(SpecError::TooManyParts(arg.to_owned()));
    }
    let name = parts[0].to_owned();
    if name.is_empty() {
        return Err(SpecError::NoName(arg.to_owned()));
    }
    let port = match parts.get(1) {
        Some(p) => to_port(p)?,
        None => None,
    };
    let mut keyed = Vec::new();
    let mut bare = Vec::new();
    for part in parts.iter().skip(2) {
        match part.split_once('=') {
            Some((k, v)) => keyed.push((k.to_owned(), v.to_owned())),
            None => bare.push((*part).to_owned()),
        }
    }
    Ok(Parts {
        name,
        port,
        keyed,
        bare,
    })
}

impl ServiceSpec {
    /// Parse a `--service` argument.
    pub fn parse(arg: &str) -> Result<ServiceSpec, SpecError> {
        const ALLOWED: &str = "listen= and address=";
        let Parts {
            name,
            port: connect_port,
            keyed,
            bare,
        } = split(arg)?;
        let bad = |part: String| SpecError::BadKey {
            part,
            flag: "--service",
            allowed: ALLOWED,
        };
        if let Some(b) = bare.into_iter().next() {
            return Err(bad(b));
        }
        let mut spec = ServiceSpec {
            name,
            connect_port,
            remote_listen_port: None,
            connect_address: None,
        };
        for (k, v) in keyed {
            match k.as_str() {
                "listen" => spec.remote_listen_port = to_port(&v)?,
                "address" if !v.is_empty() => spec.connect_address = Some(v),
                _ => return Err(bad(format!("{k}={v}"))),
            }
        }
        Ok(spec)
    }
}

impl ClientSpec {
    /// Parse a `--client` argument.
    pub fn parse(arg: &str) -> Result<ClientSpec, SpecError> {
        const ALLOWED: &str = "bind= and remote-connect=";
        let Parts {
            name,
            port: listen_port,
            keyed,
            bare,
        } = split(arg)?;
        let bad = |part: String| SpecError::BadKey {
            part,
            flag: "--client",
            allowed: ALLOWED,
        };
        if let Some(b) = bare.into_iter().next() {
            return Err(bad(b));
        }
        let mut spec = ClientSpec {
            name,
            listen_port,
            bind: None,
            remote_connect_port: None,
        };
        for (k, v) in keyed {
            match k.as_str() {
                "remote-connect" => spec.remote_connect_port = to_port(&v)?,
                "bind" if !v.is_empty() => spec.bind = Some(v),
                _ => return Err(bad(format!("{k}={v}"))),
            }
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn service_forms() {
        let s = ServiceSpec::parse("web").unwrap();
        assert_eq!(
            (s.name.as_str(), s.connect_port, s.remote_listen_port),
            ("web", None, None)
        );
        let s = ServiceSpec::parse("web:8080").unwrap();
        assert_eq!(s.connect_port, Some(8080));
        let s = ServiceSpec::parse("web:8080:listen=9090:address=10.0.0.2").unwrap();
        assert_eq!(s.remote_listen_port, Some(9090));
        assert_eq!(s.connect_address.as_deref(), Some("10.0.0.2"));
        let s = ServiceSpec::parse("web::listen=9090").unwrap();
        assert_eq!((s.connect_port, s.remote_listen_port), (None, Some(9090)));
    }

    #[test]
    fn client_forms() {
        let c = ClientSpec::parse("db:5432:bind=0.0.0.0:remote-connect=5433").unwrap();
        assert_eq!(c.listen_port, Some(5432));
        assert_eq!(c.bind.as_deref(), Some("0.0.0.0"));
        assert_eq!(c.remote_connect_port, Some(5433));
        assert_eq!(ClientSpec::parse("db").unwrap().listen_port, None);
    }

    #[test]
    fn errors() {
        assert!(matches!(ServiceSpec::parse(""), Err(SpecError::NoName(_))));
        assert!(matches!(ServiceSpec::parse(":80"), Err(SpecError::NoName(_))));
        assert!(matches!(ServiceSpec::parse("a:0"), Err(SpecError::BadPort(_))));
        assert!(matches!(
            ServiceSpec::parse("a:70000"),
            Err(SpecError::BadPort(_))
        ));
        assert!(matches!(ServiceSpec::parse("a:x"), Err(SpecError::BadPort(_))));
        assert!(matches!(
            ServiceSpec::parse("a:1:2:3:4"),
            Err(SpecError::TooManyParts(_))
        ));
        assert!(matches!(
            ServiceSpec::parse("a:1:bind=x"),
            Err(SpecError::BadKey { .. })
        ));
        assert!(matches!(
            ServiceSpec::parse("a:1:9090"),
            Err(SpecError::BadKey { .. })
        ));
        assert!(matches!(
            ClientSpec::parse("a:1:listen=2"),
            Err(SpecError::BadKey { .. })
        ));
        assert!(matches!(
            ClientSpec::parse("a:1:bind=[::1]"),
            Err(SpecError::Ipv6(_))
        ));
        assert!(matches!(
            ClientSpec::parse("a:1:remote-connect=x"),
            Err(SpecError::BadPort(_))
        ));
    }
}
