//! What a peer may reach. The side that runs a service names it with `--service`; the other
//! side allows it with `--client`, and only then listens for it. A peer's request for a name we
//! did not allow, a port we did not agree to, or a connection to a service we do not run is
//! refused with a reason that travels back to the peer. Nothing else on this host is reachable:
//! a connection goes only to the address and port of one of our `--service` arguments.
//!
//! Owns: those decisions and the state they need (which names listen, where each service is).
//! Must not: bind or connect (the caller does, then reports back with [`Policy::listening`]
//! and [`Policy::service_at`]).

use std::collections::BTreeMap;

use super::msg::{ListenerResponse, OpenRequest, RequestListener};
use super::spec::{ClientSpec, ServiceSpec};

/// The address we bind or connect to unless told otherwise.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// What to do with a peer's [`RequestListener`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenDecision {
    /// Listen at `bind`:`port` (`None`: any free port), then answer with
    /// [`ListenerResponse::listening`] carrying `desired_port`.
    Listen {
        /// The service.
        name: String,
        /// Address to bind.
        bind: String,
        /// Port to bind.
        port: Option<u16>,
        /// The port the peer must connect to (our `remote-connect=`).
        desired_port: Option<u16>,
    },
    /// Answer with this refusal.
    Refuse(ListenerResponse),
}

/// Why a policy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Two arguments with the same service name.
    #[error("service name {0:?} is given twice (each --service/--client name must be unique)")]
    Duplicate(String),
}

/// Our services and the peer's services we allow.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    services: BTreeMap<String, ServiceSpec>,
    clients: BTreeMap<String, ClientSpec>,
    /// Where each service is reached, once known: (host, port).
    targets: BTreeMap<String, (String, u16)>,
    /// The names we listen for, and on which port.
    listening: BTreeMap<String, u16>,
}

impl Policy {
    /// A policy from the command line's arguments.
    pub fn new(services: Vec<ServiceSpec>, clients: Vec<ClientSpec>) -> Result<Policy, PolicyError> {
        let mut p = Policy::default();
        for s in services {
            p.add_service(s)?;
        }
        for c in clients {
            p.allow(c)?;
        }
        Ok(p)
    }

    fn check_new(&self, name: &str) -> Result<(), PolicyError> {
        if self.services.contains_key(name) || self.clients.contains_key(name) {
            return Err(PolicyError::Duplicate(name.to_owned()));
        }
        Ok(())
    }

    /// Add a service of ours (`--service`, or fowld's `remote` command).
    pub fn add_service(&mut self, s: ServiceSpec) -> Result<(), PolicyError> {
        self.check_new(&s.name)?;
        if let Some(port) = s.connect_port {
            let host = s
                .connect_address
                .clone()
                .unwrap_or_else(|| DEFAULT_HOST.to_owned());
            self.targets.insert(s.name.clone(), (host, port));
        }
        self.services.insert(s.name.clone(), s);
        Ok(())
    }

    /// Allow a peer's service (`--client`, or fowld's `local` command).
    pub fn allow(&mut self, c: ClientSpec) -> Result<(), PolicyError> {
        self.check_new(&c.name)?;
        self.clients.insert(c.name.clone(), c);
        Ok(())
    }

    /// Our services, in name order.
    pub fn services(&self) -> impl Iterator<Item = &ServiceSpec> {
        self.services.values()
    }

    /// The peer asks us to listen for one of its services.
    pub fn on_request_listener(&self, req: &RequestListener) -> ListenDecision {
        let name = &req.unique_name;
        let refuse = |why: String| ListenDecision::Refuse(ListenerResponse::refused(name, &why));
        let Some(c) = self.clients.get(name) else {
            // fowl's words, so a fowl on the other side shows what it always shows.
            return refuse(format!("No service permitted for name: {name}"));
        };
        if let Some(port) = self.listening.get(name) {
            return refuse(format!("Already listening for {name} on port {port}"));
        }
        let port = match (req.listen_port, c.listen_port) {
            (Some(want), Some(ours)) if want != ours => {
                return refuse(format!("Desired port {want} does not match {ours}"));
            }
            (want, ours) => ours.or(want),
        };
        ListenDecision::Listen {
            name: name.clone(),
            bind: c.bind.clone().unwrap_or_else(|| DEFAULT_HOST.to_owned()),
            port,
            desired_port: c.remote_connect_port,
        }
    }

    /// We now listen for `name` on `port`.
    pub fn listening(&mut self, name: &str, port: u16) {
        self.listening.insert(name.to_owned(), port);
    }

    /// The peer answered our request for service `name`: the port our connections for it go
    /// to, or `Ok(None)` when neither side chose one (the caller picks a free one and reports
    /// it with [`Policy::service_at`]), or why the service cannot be used.
    pub fn on_listener_response(&self, name: &str, resp: &ListenerResponse) -> Result<Option<u16>, String> {
        let Some(s) = self.services.get(name) else {
            return Err(format!("answer for service {name:?}, which we did not ask for"));
        };
        if !resp.listening {
            let why = resp.reason.as_deref().unwrap_or("Unknown reason");
            return Err(format!("Service \"{name}\" failed: {why}"));
        }
        match (resp.desired_port, s.connect_port) {
            (Some(want), Some(ours)) if want != ours => Err(format!(
                "the peer wants service \"{name}\" on port {want}, but it runs on port {ours} here"
            )),
            (want, ours) => Ok(ours.or(want)),
        }
    }

    /// Service `name` is reached at `port` (on its `address=` or 127.0.0.1).
    pub fn service_at(&mut self, name: &str, port: u16) {
        if let Some(s) = self.services.get(name) {
            let host = s
                .connect_address
                .clone()
                .unwrap_or_else(|| DEFAULT_HOST.to_owned());
            self.targets.insert(name.to_owned(), (host, port));
        }
    }

    /// The peer opens a connection: where it goes, or why it may not.
    pub fn on_open(&self, req: &OpenRequest) -> Result<(String, u16), String> {
        let Some(name) = req.unique_name.as_deref() else {
            return Err("No service \"None\"".to_owned());
        };
        let Some((host, port)) = self.targets.get(name) else {
            return Err(format!("No service \"{name}\""));
        };
        if let Some(want) = req.listen_port
            && want != i64::from(*port)
        {
            return Err(format!(
                "Remote specified {want} for service {name} but we have {port} here."
            ));
        }
        Ok((host.clone(), *port))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy() -> Policy {
        Policy::new(
            vec![
                ServiceSpec::parse("web:8080").unwrap(),
                ServiceSpec::parse("chat").unwrap(),
            ],
            vec![
                ClientSpec::parse("db").unwrap(),
                ClientSpec::parse("fixed:7000:bind=0.0.0.0:remote-connect=7001").unwrap(),
            ],
        )
        .unwrap()
    }

    #[test]
    fn listens_only_for_allowed_names() {
        let mut p = policy();
        match p.on_request_listener(&RequestListener::new("nope", None)) {
            ListenDecision::Refuse(r) => {
                assert_eq!(r.reason.as_deref(), Some("No service permitted for name: nope"))
            }
            d => panic!("{d:?}"),
        }
        // Our own service's name is not the peer's to listen for either.
        assert!(matches!(
            p.on_request_listener(&RequestListener::new("web", None)),
            ListenDecision::Refuse(_)
        ));
        let d = p.on_request_listener(&RequestListener::new("db", Some(5000)));
        assert_eq!(
            d,
            ListenDecision::Listen {
                name: "db".into(),
                bind: DEFAULT_HOST.into(),
                port: Some(5000),
                desired_port: None
            }
        );
        p.listening("db", 5000);
        assert!(matches!(
            p.on_request_listener(&RequestListener::new("db", None)),
            ListenDecision::Refuse(_)
        ));
        let d = p.on_request_listener(&RequestListener::new("fixed", None));
        assert_eq!(
            d,
            ListenDecision::Listen {
                name: "fixed".into(),
                bind: "0.0.0.0".into(),
                port: Some(7000),
                desired_port: Some(7001)
            }
        );
        assert!(matches!(
            p.on_request_listener(&RequestListener::new("fixed", Some(1))),
            ListenDecision::Refuse(_)
        ));
    }

    #[test]
    fn opens_reach_only_our_services() {
        let mut p = policy();
        assert_eq!(
            p.on_open(&OpenRequest::new("web")).unwrap(),
            ("127.0.0.1".into(), 8080)
        );
        assert!(p.on_open(&OpenRequest::new("db")).is_err());
        // "chat" has no port until the peer answered and we picked one.
        assert!(p.on_open(&OpenRequest::new("chat")).is_err());
        p.service_at("chat", 9000);
        assert_eq!(p.on_open(&OpenRequest::new("chat")).unwrap().1, 9000);
        let wrong_port = OpenRequest {
            unique_name: Some("web".into()),
            listen_port: Some(1),
        };
        assert!(p.on_open(&wrong_port).is_err());
        let nameless = OpenRequest {
            unique_name: None,
            listen_port: None,
        };
        assert!(p.on_open(&nameless).is_err());
    }

    #[test]
    fn responses() {
        let p = policy();
        assert_eq!(
            p.on_listener_response("web", &ListenerResponse::listening("web", None)),
            Ok(Some(8080))
        );
        assert_eq!(
            p.on_listener_response("chat", &ListenerResponse::listening("chat", None)),
            Ok(None)
        );
        assert_eq!(
            p.on_listener_response("chat", &ListenerResponse::listening("chat", Some(5))),
            Ok(Some(5))
        );
        assert!(
            p.on_listener_response("web", &ListenerResponse::listening("web", Some(5)))
                .is_err()
        );
        let e = p
            .on_listener_response("web", &ListenerResponse::refused("web", "nope"))
            .unwrap_err();
        assert_eq!(e, "Service \"web\" failed: nope");
        assert!(
            p.on_listener_response("db", &ListenerResponse::listening("db", None))
                .is_err()
        );
    }

    #[test]
    fn names_are_unique() {
        let e = Policy::new(
            vec![ServiceSpec::parse("a").unwrap()],
            vec![ClientSpec::parse("a").unwrap()],
        );
        assert_eq!(e.unwrap_err(), PolicyError::Duplicate("a".into()));
    }
}
