//! The wire protocol of the built-in TCP transport.
