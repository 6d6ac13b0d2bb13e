//! Aurelia's runtime: the daemon that supervises a developer's stack.
//!
//! - [`daemon`]: start-up and shutdown: home, single-instance lock, socket, signals, watcher.
//! - [`supervisor`]: the task that owns the services and decides who runs (ordering, cascade).
//! - [`service`]: one task per service: process, restart policy, health checks.
//! - [`driver`]: how processes are started and stopped (native, adopted, container).
//! - [`health`]: probes and the health state machine.
//! - [`logs`]: the log relay, log files, tailing and following.
//! - [`ports`], [`state`], [`adopt`]: dynamic ports, the state file, crash recovery.
//! - [`server`]: the HTTP API over the Unix socket.
//! - [`proc`], [`clock`], [`home`]: OS and file-system helpers.

pub mod adopt;
pub mod clock;
pub mod daemon;
pub mod driver;
pub mod health;
pub mod home;
pub mod logs;
pub mod ports;
pub mod proc;
pub mod server;
pub mod service;
pub mod state;
pub mod supervisor;
pub mod watch;

pub use home::Home;
