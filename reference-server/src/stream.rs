//! Writing a streamed reply: the SSE events follow the engine's progress, one
//! `content_block_delta` per engine tick that produced tokens.

use std::convert::Infallible;

use bytes::Bytes;
use http::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http_body_util::BodyExt;
use http_body_util::channel::{Channel, Sender};
use tokio::sync::watch;

use super::app::App;
use super::generate::Reply;
use super::messages::{Held, InFlight};
use super::response::Body;
use super::sse;
use super::stats::Ending;
use super::tokenizer::Prompt;
use semantic_stress::anthropic::Usage;

/// Frames buffered between the writer task and the connection.
const CHANNEL_FRAMES: usize = 16;

/// What to stream.
#[derive(Debug)]
pub(crate) struct StreamPlan {
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) usage: Usage,
    pub(crate) reply: Reply,
    /// The engine's progress (`None`: instant).
    pub(crate) progress: Option<watch::Receiver<u32>>,
}

/// How the stream ends.
#[derive(Debug)]
pub(crate) enum Finish {
    /// Normally: the reservation becomes the agent's cache.
    Commit { held: Held, prompt: Prompt },
    /// Fault `late-reject`: an `error` event after the generation.
    LateReject { _guard: InFlight },
}

/// Starts the writer task and returns the 200 `text/event-stream` response.
pub(crate) fn respond(app: &App, plan: StreamPlan, finish: Finish) -> Response<Body> {
    let (tx, body) = Channel::<Bytes, Infallible>::new(CHANNEL_FRAMES);
    tokio::spawn(write(app.clone(), tx, plan, finish));
    let mut resp = Response::new(body.boxed_unsync());
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The client went away.
struct Gone;

async fn send(tx: &mut Sender<Bytes>, event: Bytes) -> Result<(), Gone> {
    tx.send_data(event).await.map_err(|_| Gone)
}

async fn write(app: App, mut tx: Sender<Bytes>, mut plan: StreamPlan, finish: Finish) {
    // A client that went away is counted when the reservation is dropped unreleased.
    let _ = write_events(&app, &mut tx, &mut plan, finish).await;
}

async fn write_events(
    app: &App,
    tx: &mut Sender<Bytes>,
    plan: &mut StreamPlan,
    finish: Finish,
) -> Result<(), Gone> {
    let late = matches!(finish, Finish::LateReject { .. });
    send(tx, sse::message_start(&plan.id, &plan.model, &plan.usage)).await?;
    send(tx, sse::content_block_start()).await?;
    send(tx, sse::ping()).await?;
    let total = plan.reply.words.len();
    let mut sent = 0;
    while sent < total {
        let done = match plan.progress.as_mut() {
            None => total,
            Some(rx) => {
                if rx.changed().await.is_err() {
                    let message = "the server stopped before the reply was complete";
                    send(tx, sse::error("api_error", message)).await?;
                    app.inner.counters.record(Ending::ServerError, 500);
                    return Ok(());
                }
                *rx.borrow_and_update() as usize
            }
        };
        if done > sent && !late {
            send(tx, sse::delta(&plan.reply.chunk(sent, done))).await?;
        }
        sent = sent.max(done);
    }
    let config = app.config();
    let (held, prompt) = match finish {
        Finish::Commit { held, prompt } => (held, prompt),
        Finish::LateReject { _guard } => {
            let message = "block pool exhausted after generation";
            send(tx, sse::error("overloaded_error", message)).await?;
            app.inner
                .counters
                .record(Ending::LateRejected, config.admission.reject_status);
            return Ok(());
        }
    };
    held.complete(prompt, &plan.reply, &plan.usage);
    send(tx, sse::content_block_stop()).await?;
    if config.faults.truncate_stream {
        app.inner.counters.record(Ending::Truncated, 200);
        return Ok(());
    }
    let stop = plan.reply.stop_reason.as_str();
    send(tx, sse::message_delta(stop, plan.usage.output_tokens)).await?;
    // Counted before the last event, so a client that saw `message_stop` finds it counted.
    app.inner
        .counters
        .record(Ending::Completed { stream: true }, 200);
    send(tx, sse::message_stop()).await
}
