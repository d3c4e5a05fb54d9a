//! compact-encoding (JS `compact-encoding`) for the oplog: bounds-checked reader, writer.
