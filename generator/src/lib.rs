//! plasmagen library.
