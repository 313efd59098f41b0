//! k-anonymity of a batch. (Stub: being written.)
