//! The client side of a SOCKS5 CONNECT (RFC 1928, no authentication), sans-IO: the bytes to
//! write and the parsers of the proxy's answers. This is how every connection goes through Tor
//! (its SOCKS port): the host name travels to the proxy unresolved (address type 3), so we never
//! look a name up ourselves.
//!
//! Owns: the wire format and what each reply code means (Tor's own codes included). Must not: do
//! I/O or decide what to dial.

/// Tor's answer codes beyond RFC 1928's (0xF0–0xF7, onion services), and the RFC's own.
fn reply_meaning(code: u8) -> &'static str {
    match code {
        0x01 => "general failure",
        0x02 => "connection not allowed by the proxy's rules",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused by the destination",
        0x06 => "TTL expired (the destination did not answer)",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        0xF0 => "onion service descriptor not found",
        0xF1 => "onion service descriptor invalid",
        0xF2 => "onion service introduction failed",
        0xF3 => "onion service rendezvous failed",
        0xF4 => "onion service needs client authorization",
        0xF5 => "onion service client authorization is wrong",
        0xF6 => "onion address invalid",
        0xF7 => "onion service introduction timed out",
        _ => "unknown reply code",
    }
}

/// Longest host name a CONNECT can carry (one length byte).
pub const MAX_HOST_LEN: usize = 255;

/// What went wrong in a SOCKS5 exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Socks5Error {
    /// The proxy does not speak SOCKS version 5.
    #[error("not a SOCKS5 proxy (it answered with version {0})")]
    Version(u8),
    /// The proxy wants authentication we do not offer.
    #[error("the SOCKS5 proxy requires authentication (method {0:#04x}); we offer none")]
    Method(u8),
    /// The proxy could not or would not connect.
    #[error("the SOCKS5 proxy could not connect: {meaning} (code {code:#04x})")]
    Refused {
        /// The reply code.
        code: u8,
        /// What it means.
        meaning: &'static str,
    },
    /// The host name is longer than a CONNECT can carry.
    #[error("host name of {0} bytes is longer than SOCKS5's limit of {MAX_HOST_LEN}")]
    HostTooLong(usize),
    /// The host name is empty.
    #[error("empty host name")]
    EmptyHost,
    /// The reply names an address type that does not exist.
    #[error("the SOCKS5 proxy's reply has an unknown address type {0}")]
    AddressType(u8),
    /// A reserved byte was not zero.
    #[error("the SOCKS5 proxy's reply is malformed")]
    Malformed,
}

/// The greeting: version 5, one method, "no authentication".
pub const GREETING: [u8; 3] = [5, 1, 0];

/// Parse the answer to [`GREETING`]: `Ok(None)` until both bytes are there, then `Ok(Some(2))`.
pub fn parse_method_reply(buf: &[u8]) -> Result<Option<usize>, Socks5Error> {
    let [version, method, ..] = buf else {
        return Ok(None);
    };
    if *version != 5 {
        return Err(Socks5Error::Version(*version));
    }
    if *method != 0 {
        return Err(Socks5Error::Method(*method));
    }
    Ok(Some(2))
}

/// The CONNECT request for `host:port`. IP literals (IPv6 without brackets) go as addresses,
/// anything else as a name for the proxy to resolve.
pub fn connect_request(host: &str, port: u16) -> Result<Vec<u8>, Socks5Error> {
    let mut out = vec![5, 1, 0];
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            out.push(1);
            out.extend_from_slice(&a.octets());
        }
        Ok(std::net::IpAddr::V6(a)) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        Err(_) => {
            if host.is_empty() {
                return Err(Socks5Error::EmptyHost);
            }
            let len = u8::try_from(host.len()).map_err(|_| Socks5Error::HostTooLong(host.len()))?;
            out.push(3);
            out.push(len);
            out.extend_from_slice(host.as_bytes());
        }
    }
    out.extend_from_slice(&port.to_be_bytes());
    Ok(out)
}

/// Parse the answer to a CONNECT: `Ok(None)` until it is complete, then `Ok(Some(n))`, its
/// length (bytes after it are the destination's). A refusal is an error naming the reason.
pub fn parse_connect_reply(buf: &[u8]) -> Result<Option<usize>, Socks5Error> {
    let [version, code, reserved, atyp, rest @ ..] = buf else {
        // Judge what is there already: a refusal may be cut short by the proxy closing.
        return match buf {
            [v, ..] if *v != 5 => Err(Socks5Error::Version(*v)),
            [_, code, ..] if *code != 0 => Err(refused(*code)),
            _ => Ok(None),
        };
    };
    if *version != 5 {
        return Err(Socks5Error::Version(*version));
    }
    if *code != 0 {
        return Err(refused(*code));
    }
    if *reserved != 0 {
        return Err(Socks5Error::Malformed);
    }
    let addr_len = match atyp {
        1 => 4,
        4 => 16,
        3 => match rest.first() {
            Some(n) => 1 + usize::from(*n),
            None => return Ok(None),
        },
        other => return Err(Socks5Error::AddressType(*other)),
    };
    let total = 4 + addr_len + 2;
    Ok((buf.len() >= total).then_some(total))
}

fn refused(code: u8) -> Socks5Error {
    Socks5Error::Refused {
        code,
        meaning: reply_meaning(code),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_go_unresolved_and_addresses_as_addresses() {
        assert_eq!(
            connect_request("relay.example", 4001).unwrap(),
            [&[5, 1, 0, 3, 13][..], b"relay.example", &[0x0f, 0xa1]].concat()
        );
        assert_eq!(
            connect_request("127.0.0.1", 80).unwrap(),
            [5, 1, 0, 1, 127, 0, 0, 1, 0, 80]
        );
        let v6 = connect_request("::1", 443).unwrap();
        assert_eq!((v6[3], v6.len()), (4, 4 + 16 + 2));
        assert_eq!(connect_request("", 1), Err(Socks5Error::EmptyHost));
        assert_eq!(
            connect_request(&"a".repeat(256), 1),
            Err(Socks5Error::HostTooLong(256))
        );
        assert!(connect_request(&"a".repeat(255), 1).is_ok());
    }

    #[test]
    fn the_method_reply_needs_version_5_and_no_authentication() {
        assert_eq!(parse_method_reply(&[5]), Ok(None));
        assert_eq!(parse_method_reply(&[5, 0]), Ok(Some(2)));
        assert_eq!(parse_method_reply(&[4, 0]), Err(Socks5Error::Version(4)));
        assert_eq!(parse_method_reply(&[5, 0xff]), Err(Socks5Error::Method(0xff)));
    }

    #[test]
    fn connect_replies_of_every_address_type_are_measured() {
        let v4 = [5, 0, 0, 1, 10, 0, 0, 1, 0, 80];
        for cut in 0..v4.len() {
            assert_eq!(parse_connect_reply(&v4[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse_connect_reply(&v4), Ok(Some(10)));
        let mut more = v4.to_vec();
        more.extend_from_slice(b"data");
        assert_eq!(parse_connect_reply(&more), Ok(Some(10)));
        let name = [&[5, 0, 0, 3, 3][..], b"abc", &[0, 1]].concat();
        assert_eq!(parse_connect_reply(&name[..6]), Ok(None));
        assert_eq!(parse_connect_reply(&name), Ok(Some(name.len())));
        let v6 = [&[5, 0, 0, 4][..], &[0; 16], &[0, 1]].concat();
        assert_eq!(parse_connect_reply(&v6), Ok(Some(22)));
    }

    #[test]
    fn refusals_say_why_even_when_cut_short() {
        let e = parse_connect_reply(&[5, 5]).unwrap_err();
        assert_eq!(e, refused(5));
        assert!(e.to_string().contains("connection refused by the destination"));
        let tor = parse_connect_reply(&[5, 0xF0, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(tor.to_string().contains("onion service descriptor not found"));
        assert_eq!(parse_connect_reply(&[5, 0, 1, 1]), Err(Socks5Error::Malformed));
        assert_eq!(
            parse_connect_reply(&[5, 0, 0, 9]),
            Err(Socks5Error::AddressType(9))
        );
        assert_eq!(parse_connect_reply(&[6]), Err(Socks5Error::Version(6)));
    }
}
