//! The `oplog` file of hypercore 10: two header slots and CRC-framed entries.
