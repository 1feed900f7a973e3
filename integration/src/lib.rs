//! Test harness for end-to-end tests of the minirun binary.
