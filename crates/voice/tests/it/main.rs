//! Loopback tests of the voice driver: the proxy on a real UDP socket, with
//! tiny trunks and a caller written here.

mod driver;
mod flood;
mod media;
mod sipp;
