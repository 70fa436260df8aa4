//! Simulated ICS devices on loopback, for otscope's tests and benchmarks only: nothing here is part
//! of otscope or of a scan.
//!
//! Each reply layout is written once, from the protocol specifications, byte by byte:
//! [`modbus`], [`iso`] and [`s7`], [`enip`], [`bacnet`], [`fox`], [`fins`]. [`serve`] runs them as
//! bounded loopback responders (TCP, TLS with a certificate from [`tls`], UDP), and a [`Lab`] is a set
//! of such devices on consecutive addresses with the ledger that registers them (the `otscope-lab`
//! binary starts one).
//!
//! The crate speaks bytes only and does not depend on otscope.

pub mod bacnet;
pub mod enip;
pub mod fins;
pub mod fox;
pub mod iso;
mod lab;
pub mod modbus;
pub mod s7;
pub mod serve;
pub mod tls;

pub use lab::{plan, port_list, write_ledger, Device, Kind, Lab};
