//! Behaviour tests through a guest's ring, message by message.

mod basic;
mod service_path;
