//! Redis adapter (see mod docs).
