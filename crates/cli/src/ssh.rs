//! `wormhole ssh invite` / `wormhole ssh accept` (docs/protocol.md §5.6): the inviter allocates a code
//! and waits for one `{"offer":{"message":"<public key>"}}`, acknowledges it and appends the key
//! to `authorized_keys`; the accepter sends its public key.
//!
//! The key exchange is written against the library's [`MessagePipe`] (so it is unit-tested in
//! memory); the files are handled by `ssh_keys`. The appid is
//! `lothar.com/wormhole/ssh-add` unless `--appid` says otherwise (chosen by the caller).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use wormhole::Wormhole;
use wormhole::transfer::{Answer, AppMsg, MessagePipe, Offer};

use crate::json::{self, Event, say};
use crate::report::TransferError;
use crate::ssh_keys::{Appended, PublicKey, append_authorized_key, parse_public_key};

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

/// `ssh invite`: allocate a code, receive a key, append it. Returns the key.
pub async fn invite(w: &Wormhole, code_length: usize, ssh_dir: &Path) -> Result<PublicKey> {
    let auth = ssh_dir.join("authorized_keys");
    if !auth.exists() {
        say(&format!("Note: '{}' not found; will be created", auth.display()));
        if !ssh_dir.exists() {
            say(&format!("      '{}' doesn't exist either", ssh_dir.display()));
        }
    }
    welcome_event(w).await?;
    w.allocate_code(code_length).await?;
    let code = w.get_code().await?;
    json::emit(&Event::Code { code: code.clone() });
    say(&format!(
        "Now tell the other user to run:\n\nwormhole ssh accept {code}\n"
    ));
    verified(w).await?;
    receive_key(w, ssh_dir).await
}

/// The inviter's half after the key is confirmed: one key offer, checked, acknowledged, added.
pub async fn receive_key<P: MessagePipe>(pipe: &P, ssh_dir: &Path) -> Result<PublicKey> {
    let bytes = pipe.recv().await?;
    let text = match AppMsg::parse(&bytes).context("message from the other side")? {
        AppMsg::Offer(Offer::Message(text)) => text,
        AppMsg::Error(e) => return Err(TransferError(e).into()),
        _ => bail!("Do not understand the other side's message (expected a public key offer)"),
    };
    let key = match parse_public_key(&text) {
        Ok(k) => k,
        Err(e) => {
            pipe.send(AppMsg::Error("not an ssh public key".into()).to_bytes())
                .await?;
            return Err(e.into());
        }
    };
    pipe.send(AppMsg::Answer(Answer::MessageAck("ok".into())).to_bytes())
        .await?;
    let (path, added) = match append_authorized_key(ssh_dir, &key)? {
        Appended::Added(path) => {
            say(&format!(
                "Appended key type='{}' id='{}' to '{}'",
                key.kind,
                key.keyid,
                path.display()
            ));
            (path, true)
        }
        Appended::AlreadyPresent(path) => {
            say(&format!(
                "Key type='{}' id='{}' is already in '{}'; not added again",
                key.kind,
                key.keyid,
                path.display()
            ));
            (path, false)
        }
    };
    json::emit(&Event::SshKey {
        key_type: key.kind.clone(),
        keyid: key.keyid.clone(),
        path: Some(path.to_string_lossy().into_owned()),
        added: Some(added),
    });
    Ok(key)
}

/// `ssh accept`: send the key under `code` and wait for the acknowledgement.
pub async fn accept(w: &Wormhole, code: &str, key: &PublicKey) -> Result<()> {
    welcome_event(w).await?;
    w.set_code(code).await?;
    let code = w.get_code().await?;
    json::emit(&Event::Code { code });
    verified(w).await?;
    send_key(w, key).await
}

/// `--json`: the server's welcome as an event (the Python CLI's `ssh` shows none, so neither do
/// we without `--json`).
async fn welcome_event(w: &Wormhole) -> Result<()> {
    if json::enabled() {
        let welcome = w.get_welcome().await?;
        json::emit(&Event::Welcome {
            motd: welcome.motd.clone(),
            current_cli_version: welcome.current_cli_version.clone(),
        });
    }
    Ok(())
}

/// Wait for the key and its confirmation, emitting `key_established` and `verifier`.
async fn verified(w: &Wormhole) -> Result<()> {
    w.get_unverified_key().await?;
    json::emit(&Event::KeyEstablished {});
    let verifier = w.get_verifier().await?;
    json::emit(&Event::Verifier {
        verifier: hex::encode(verifier),
    });
    Ok(())
}

/// The accepter's half after the key is confirmed.
pub async fn send_key<P: MessagePipe>(pipe: &P, key: &PublicKey) -> Result<()> {
    pipe.send(AppMsg::Offer(Offer::Message(key.line.clone())).to_bytes())
        .await?;
    loop {
        match AppMsg::parse(&pipe.recv().await?).context("message from the other side")? {
            AppMsg::Answer(Answer::MessageAck(ok)) if ok == "ok" => break,
            AppMsg::Error(e) => return Err(TransferError(e).into()),
            AppMsg::Answer(other) => bail!("unexpected answer {other:?}"),
            _ => {}
        }
    }
    say("Key sent.");
    json::emit(&Event::SshKey {
        key_type: key.kind.clone(),
        keyid: key.keyid.clone(),
        path: None,
        added: None,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use wormhole::transfer::{MemoryPipe, memory_pair};

    fn pair() -> (MemoryPipe, MemoryPipe) {
        memory_pair("test", |_, len| vec![0; len])
    }

    #[tokio::test]
    async fn invite_and_accept_exchange_a_key_once() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".ssh");
        let key = parse_public_key("ssh-ed25519 AAAAC3Nz me@laptop").unwrap();
        for _ in 0..2 {
            let (a, b) = pair();
            let k2 = key.clone();
            let acc = tokio::spawn(async move { send_key(&b, &k2).await });
            let got = receive_key(&a, &dir).await.unwrap();
            acc.await.unwrap().unwrap();
            assert_eq!(got, key);
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("authorized_keys")).unwrap(),
            "ssh-ed25519 AAAAC3Nz me@laptop\n"
        );
    }

    #[tokio::test]
    async fn a_multi_line_key_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".ssh");
        let (a, b) = pair();
        b.send(
            AppMsg::Offer(Offer::Message(
                "ssh-rsa AAAA x\ncommand=\"evil\" ssh-rsa BBBB".into(),
            ))
            .to_bytes(),
        )
        .await
        .unwrap();
        assert!(receive_key(&a, &dir).await.is_err());
        assert!(!dir.join("authorized_keys").exists());
        assert_eq!(
            AppMsg::parse(&b.recv().await.unwrap()).unwrap(),
            AppMsg::Error("not an ssh public key".into())
        );
    }
}
