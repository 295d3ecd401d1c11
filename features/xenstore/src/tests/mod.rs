//! Behaviour tests through a guest's ring, message by message.

mod boot;
mod devices;
mod domains;
mod messages;
mod perms;
mod quotas;
mod random;
mod ring;
mod service_path;
mod transactions;
mod watches;
