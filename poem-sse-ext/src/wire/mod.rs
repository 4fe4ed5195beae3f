//! The wire: what a stream sends besides application events ([`crate::Event`]), the rules
//! event names and ids follow, and the cursor of a stream of several channels. It knows no store
//! and no hub.
//!
//! Every frame follows the WHATWG HTML standard, [§9.2.6 "Interpreting an event stream"][spec].
//! A hub sends, besides the events published on it:
//!
//! | frame | when | on the wire |
//! | --- | --- | --- |
//! | retry hint | first on every stream | `retry: <ms>` |
//! | end | last before a stream ends on purpose (lifetime, reauth): no event, but the client's last id | `id: <where the stream is>` (one channel), `retry: <ms>` |
//! | [`Reset`] | the resume point can not be honoured | `id: <head>`, `event: sse-reset`, `data: {"reason": …, "resume_from": …}` |
//! | heartbeat | after each idle interval | `:` (a comment; browsers ignore it) |
//! | [`REAUTH_EVENT`] | the authorization expired or was revoked; then the end frame | `event: sse-reauth`, `data: {"resume_from": …}` |
//! | [`BUSY_EVENT`] | a soft refusal: after the retry hint, and the end | `event: sse-busy`, `data: {"reason": …, "retry_ms": …}` |
//!
//! [spec]: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

pub(crate) mod event;
pub(crate) mod frames;
pub(crate) mod id;
pub(crate) mod set_cursor;

pub use event::{validate_event_name, MAX_EVENT_NAME_LEN, MAX_ID_LEN};
pub(crate) use event::{Event, EventError};
pub(crate) use frames::*;
pub(crate) use id::{EventId, Published, Recent, StoredEvent};
pub use id::{Reset, ResetReason};
pub use set_cursor::{set_cursor, MAX_SET_CHANNELS, MAX_SET_CURSOR_LEN};

/// The event name of the reset signal ([`Reset`]); applications can not publish it.
pub const RESET_EVENT: &str = "sse-reset";

/// The event a stream sends before it ends because its authorization expired or was revoked:
/// `data: {"resume_from": "<id>"}`. The page should renew its credentials (a session refresh, say)
/// and let the `EventSource` reconnect, which resumes exactly after `resume_from`.
pub const REAUTH_EVENT: &str = "sse-reauth";

/// The event of a soft refusal: `data: {"reason": "...", "retry_ms": N}`; the response then ends,
/// and a native `EventSource` reconnects by itself after `retry_ms`.
pub const BUSY_EVENT: &str = "sse-busy";

/// Event names starting with this are the hub's own signals; applications can not publish them.
pub const RESERVED_PREFIX: &str = "sse-";
