//! The epoch history (RocketMQ's `epochFileCheckpoint`).
