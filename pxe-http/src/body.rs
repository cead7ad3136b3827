use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::files::FileBody;
use crate::observe::{HttpObserver, Route};
use crate::sendfile::FileSends;
use std::sync::Arc;

/// The body of every response the service gives: nothing, a small buffer (a script, an
/// error message) or a file streamed from disk.
#[derive(Debug)]
pub struct Body(Kind, Option<Counted>);

/// Where the bytes of a body are reported as they go ([`crate::HttpObserver::body_sent`]).
#[derive(Debug)]
struct Counted {
    observer: Arc<dyn HttpObserver>,
    route: Route,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    File(Box<FileBody>),
}

impl Body {
    /// No body (HEAD, 304, 416).
    pub fn empty() -> Self {
        Self(Kind::Full(None), None)
    }

    /// A body held in memory.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self(Kind::Full((!bytes.is_empty()).then_some(bytes)), None)
    }

    pub(crate) fn file(file: FileBody) -> Self {
        Self(Kind::File(Box::new(file)), None)
    }

    /// Lets a file body be sent by `sendfile` through `sends` (see `crate::sendfile`).
    pub(crate) fn send_by_reference(&mut self, sends: &FileSends) {
        if let Kind::File(file) = &mut self.0 {
            file.send_by_reference(sends.clone());
        }
    }

    /// Reports each chunk of this body to `observer` as it is taken.
    pub(crate) fn count_with(&mut self, observer: Arc<dyn HttpObserver>, route: Route) {
        self.1 = Some(Counted { observer, route });
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.0 {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::File(file) => Pin::new(file.as_mut()).poll_frame(cx),
        };
        if let (Some(counted), Poll::Ready(Some(Ok(frame)))) = (&this.1, &polled) {
            if let Some(data) = frame.data_ref() {
                counted.observer.body_sent(counted.route, data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::File(file) => file.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::File(file) => file.size_hint(),
        }
    }
}
