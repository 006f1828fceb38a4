//! Exit handling tests.
