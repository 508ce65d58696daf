//! Test fixtures shared by the cross-crate tests.
