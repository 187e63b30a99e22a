//! `wormhole ssh invite` / `wormhole ssh accept` (docs/protocol.md §5.6): the inviter allocates a code
//! and waits for one `{"offer":{"message":"<public key>"}}`, acknowledges it and appends the key
//! to `authorized_keys`; the accepter sends its public key.
//!
//! The messages go through [`Session`]; the files are handled by `ssh_keys`. The appid is
//! `lothar.com/wormhole/ssh-add` unless `--appid` says otherwise (chosen by the caller).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use wormhole_proto::transfer::{Answer, AppMsg, Offer};

use crate::report::TransferError;
use crate::session::Session;
use crate::ssh_keys::{PublicKey, append_authorized_key, parse_public_key};

/// Where `authorized_keys` lives: `~/.ssh/` or `~USER/.ssh/`.
pub fn ssh_dir(user: Option<&str>, home: &Path) -> Result<PathBuf> {
    match user {
        None => Ok(home.join(".ssh")),
        Some(user) => {
            // The home of another user, from the passwd file (no NSS lookups needed for tests).
            let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
            passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.first() == Some(&user))
                .and_then(|f| f.get(5).map(|h| Path::new(h).join(".ssh")))
                .with_context(|| format!("no such user: {user}"))
        }
    }
}

/// `ssh invite`: allocate a code, receive a key, append it. Returns the appended key.
pub async fn invite<S: Session>(w: &mut S, code_length: usize, ssh_dir: &Path) -> Result<PublicKey> {
    let auth = ssh_dir.join("authorized_keys");
    if !auth.exists() {
        println!("Note: '{}' not found; will be created", auth.display());
        if !ssh_dir.exists() {
            println!("      '{}' doesn't exist either", ssh_dir.display());
        }
    }
    w.allocate_code(code_length).await?;
    let code = w.code().await?;
    println!("Now tell the other user to run:\n\nwormhole ssh accept {code}\n");
    w.verifier().await?;
    let bytes = w.receive().await?;
    let text = match AppMsg::parse(&bytes).context("message from the other side")? {
        AppMsg::Offer(Offer::Message(text)) => text,
        AppMsg::Error(e) => return Err(TransferError(e).into()),
        _ => bail!("Do not understand the other side's message (expected a public key offer)"),
    };
    let key = match parse_public_key(&text) {
        Ok(k) => k,
        Err(e) => {
            w.send(AppMsg::Error("not an ssh public key".into()).to_bytes())
                .await?;
            return Err(e.into());
        }
    };
    w.send(AppMsg::Answer(Answer::MessageAck("ok".into())).to_bytes())
        .await?;
    let path = append_authorized_key(ssh_dir, &key)?;
    println!(
        "Appended key type='{}' id='{}' to '{}'",
        key.kind,
        key.keyid,
        path.display()
    );
    Ok(key)
}

/// `ssh accept`: send the key under `code` and wait for the acknowledgement.
pub async fn accept<S: Session>(w: &mut S, code: &str, key: &PublicKey) -> Result<()> {
    w.set_code(code).await?;
    w.code().await?;
    w.verifier().await?;
    w.send(AppMsg::Offer(Offer::Message(key.line.clone())).to_bytes())
        .await?;
    loop {
        match AppMsg::parse(&w.receive().await?).context("message from the other side")? {
            AppMsg::Answer(Answer::MessageAck(ok)) if ok == "ok" => break,
            AppMsg::Error(e) => return Err(TransferError(e).into()),
            AppMsg::Answer(other) => bail!("unexpected answer {other:?}"),
            _ => {}
        }
    }
    println!("Key sent.");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::session::fake::pair;

    #[tokio::test]
    async fn invite_and_accept_exchange_a_key() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".ssh");
        let (mut a, mut b) = pair();
        let key = parse_public_key("ssh-ed25519 AAAAC3Nz me@laptop").unwrap();
        let k2 = key.clone();
        let acc = tokio::spawn(async move { accept(&mut b, "7-word-word", &k2).await });
        let got = invite(&mut a, 2, &dir).await.unwrap();
        acc.await.unwrap().unwrap();
        assert_eq!(got, key);
        assert_eq!(
            std::fs::read_to_string(dir.join("authorized_keys")).unwrap(),
            "ssh-ed25519 AAAAC3Nz me@laptop\n"
        );
    }

    #[tokio::test]
    async fn a_multi_line_key_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".ssh");
        let (mut a, mut b) = pair();
        b.send(
            AppMsg::Offer(Offer::Message(
                "ssh-rsa AAAA x\ncommand=\"evil\" ssh-rsa BBBB".into(),
            ))
            .to_bytes(),
        )
        .await
        .unwrap();
        assert!(invite(&mut a, 2, &dir).await.is_err());
        assert!(!dir.join("authorized_keys").exists());
        assert_eq!(
            AppMsg::parse(&b.receive().await.unwrap()).unwrap(),
            AppMsg::Error("not an ssh public key".into())
        );
    }
}
