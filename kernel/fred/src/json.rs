//! The JSON driver (not written yet).
