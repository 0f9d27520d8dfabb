//! Master/slave replication: roles, the hook a transport plugs into, the wire protocol of the
//! built-in TCP transport, and the epoch history that finds where two logs agree.

pub mod epoch;
pub mod frame;
