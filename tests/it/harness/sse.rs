//! A Server-Sent Events client for `GET /api/events`: parses the stream into
//! events (comments skipped).

use protocol::ServerMessage;

use super::WAIT;

/// One parsed SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// An open event stream, read chunk by chunk.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    pub async fn open(base: &str, query: &str, last_event_id: Option<u64>) -> SseStream {
        let mut request = reqwest::Client::new().get(format!("{base}/api/events{query}"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.expect("GET /api/events");
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        // Proxies must pass events on at once, not buffer them.
        assert_eq!(response.headers()["x-accel-buffering"], "no");
        assert_eq!(response.headers()["cache-control"], "no-cache");
        SseStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), within [`WAIT`].
    pub async fn next(&mut self) -> SseEvent {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    event: "message".into(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim_start());
                        any = true;
                    }
                }
                if any {
                    return event;
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("no SSE event in time")
                .expect("stream read")
                .expect("stream ended");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    /// The next `pixel_updated` event, with its decoded payload.
    pub async fn next_pixel(&mut self) -> (SseEvent, protocol::PixelUpdated) {
        loop {
            let e = self.next().await;
            if e.event == "pixel_updated" {
                match serde_json::from_str(&e.data).unwrap() {
                    ServerMessage::PixelUpdated(p) => return (e, p),
                    other => panic!("{other:?}"),
                }
            }
        }
    }
}

impl SseStream {
    /// The next event named `name`, skipping others, with its decoded data.
    pub async fn next_named(&mut self, name: &str) -> ServerMessage {
        loop {
            let e = self.next().await;
            if e.event == name {
                return serde_json::from_str(&e.data)
                    .unwrap_or_else(|err| panic!("{name} data {:?}: {err}", e.data));
            }
        }
    }
}
