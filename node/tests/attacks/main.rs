//! Attacks on a real `ibis-node` process, one test per item of the security review. Each
//! case starts its own node (a child process on an ephemeral port of 127.0.0.1, set up
//! through the CLI) and asserts:
//! (a) the clear error the attacker gets (HTTP status and body, the protocol `error`, or the
//!     close reason);
//! (b) only the offending connection is affected: a [`peers::Witness`] (one client changes
//!     a document, another sees each change) keeps syncing during and after the attack, and
//!     neither of its clients is disconnected;
//! (c) what is stored is unchanged where it should be (read back through the API, a client,
//!     or the stopped node's SQLite);
//! (d) the node's memory stays bounded (`/proc/<pid>/status` VmHWM, reset before the
//!     attack), and prints what it spent:
//!     `ATTACK <case>: peak RSS <MB> MB, CPU <s> s, <what happened>` (written to stdout
//!     directly, so it shows without `--nocapture`).
//!
//! No assertion is about time, beyond every wait being bounded.

mod harness;
mod peers;
mod wire;

mod bombs;
mod edge;
mod federation;
mod floods;
mod operations;

// Cases for the other items, in this suite:
// - item 4b, the inbound queue (a connection that sends faster than the engine takes in):
//   `floods::frames_faster_than_the_engine_takes_them`;
// - item 5, revocation (a removed member's, session's or partner's open sockets closed):
//   `operations::revocation_reaches_live_sockets`;
// - item 6, storage failure (a failed commit stops service, loses nothing acknowledged):
//   `operations::a_full_disk_stops_service_and_loses_nothing_acknowledged`;
// - item 7, archive import (a hostile archive refused like any change):
//   `operations::an_archive_import_checks_every_document`.
