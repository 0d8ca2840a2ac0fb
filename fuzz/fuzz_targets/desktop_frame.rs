//! Feeds arbitrary text to what reads desktop-protocol frames and tokens
//! (SPEC D1, `crates/desktop/PROTOCOL.md`): the service's request parser
//! (frames from any desktop, before and after `hello`), the client's reader
//! of server messages, and the session-token check. None may panic; a
//! request that parses has an id a JavaScript client can hold.
#![no_main]

use hotsite_desktop::client::wire::ServerMessage;
use hotsite_desktop::service::protocol;
use hotsite_desktop::service::session::Sessions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(framed) = protocol::parse(text) {
        assert!(framed.id < 1 << 53);
    }
    let _ = ServerMessage::parse(text);
    let sessions = Sessions::new(Some("a key for the fuzz target, 32 bytes"));
    // No input forges a MAC under a key it does not know.
    assert!(sessions.check(text, "alice", "$argon2id$phc", 0).is_err());
});
