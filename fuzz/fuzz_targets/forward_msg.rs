//! Fuzz target: fowl's framed messages as a peer sends them (a `fowl-commands` record, the
//! opening request and reply of a forwarded connection) and the policy's answers to them. Must
//! never panic; whatever decodes must encode again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::forward::{
    ClientSpec, ControlMsg, OpenReply, OpenRequest, Policy, ServiceSpec, frame,
};

fuzz_target!(|data: &[u8]| {
    let mut policy = Policy::new(
        vec![ServiceSpec { name: "web".into(), connect_port: Some(8080), remote_listen_port: None, connect_address: None }],
        vec![ClientSpec { name: "db".into(), listen_port: None, bind: None, remote_connect_port: Some(5432) }],
    )
    .expect("distinct names");
    if let Ok(m) = ControlMsg::decode(data) {
        match m {
            ControlMsg::RequestListener(r) => {
                let _ = policy.on_request_listener(&r);
                let _ = frame::encode(&r);
            }
            ControlMsg::ListenerResponse(r) => {
                let _ = policy.on_listener_response("web", &r);
                let _ = frame::encode(&r);
            }
            ControlMsg::Unknown(_) => {}
        }
    }
    if let Ok(o) = OpenRequest::decode(data) {
        let _ = policy.on_open(&o);
        policy.service_at("web", 1);
    }
    if let Ok(r) = OpenReply::decode(data) {
        let _ = frame::encode(&r);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = ServiceSpec::parse(s);
        let _ = ClientSpec::parse(s);
    }
});
