//! Loopback tests of the site driver against SIPp (SPEC S1, S8): real
//! phones registering with digest auth, a real media gateway calling DNs.

mod sipp;
