//! Spans: the broker's own, around each call it serves (server spans) and
//! each call it makes to a mutuelle (client spans), with the W3C trace
//! context of `passerelle_adapters::trace`. Exported over OTLP/gRPC when
//! built with the `otlp` feature and configured (`[traces] otlp_endpoint`);
//! otherwise only their ids exist, for the `traceparent` the broker passes
//! on and its audit rows.
//!
//! The exporter (opentelemetry-otlp 0.33, `grpc-tonic` only) shares the
//! broker's tonic and prost and brings no second crypto provider; spans are
//! batched (the SDK's batch processor: 2,048 queued at most, the rest
//! dropped and counted by the SDK) and flushed at shutdown.

use passerelle_adapters::trace::TraceParent;

/// Where spans go.
pub struct Spans {
    #[cfg(feature = "otlp")]
    otlp: Option<otlp::Exporter>,
}

/// A span in progress; [`Span::end`] ends it with the call's outcome.
pub struct Span {
    #[cfg(feature = "otlp")]
    inner: Option<opentelemetry_sdk::trace::Span>,
}

impl Spans {
    /// No export: span ids only.
    pub fn off() -> Spans {
        Spans {
            #[cfg(feature = "otlp")]
            otlp: None,
        }
    }

    /// Spans exported to the OTLP/gRPC collector at `endpoint`.
    #[cfg(feature = "otlp")]
    pub fn otlp(endpoint: &str) -> Result<Spans, String> {
        Ok(Spans {
            otlp: Some(otlp::Exporter::new(endpoint)?),
        })
    }

    /// The span of a call the broker serves, under the caller's span if it
    /// sent one (else a new trace); the trace context its work runs in.
    pub fn server(&self, name: &'static str, caller: Option<&TraceParent>) -> (Span, TraceParent) {
        #[cfg(not(feature = "otlp"))]
        let _ = name;
        #[cfg(feature = "otlp")]
        if let Some(e) = &self.otlp {
            return e.start(name, caller, opentelemetry::trace::SpanKind::Server);
        }
        let t = caller.map_or_else(TraceParent::root, TraceParent::child);
        (Span::none(), t)
    }

    /// The span of a call to a mutuelle, under `parent` (the running
    /// call's span): the context the call carries.
    pub fn client(&self, name: &'static str, parent: &TraceParent) -> (Span, TraceParent) {
        #[cfg(not(feature = "otlp"))]
        let _ = name;
        #[cfg(feature = "otlp")]
        if let Some(e) = &self.otlp {
            return e.start(name, Some(parent), opentelemetry::trace::SpanKind::Client);
        }
        (Span::none(), parent.child())
    }

    /// Sends the spans still queued (at shutdown).
    pub fn shutdown(&self) {
        #[cfg(feature = "otlp")]
        if let Some(e) = &self.otlp {
            e.shutdown();
        }
    }
}

impl Span {
    fn none() -> Span {
        Span {
            #[cfg(feature = "otlp")]
            inner: None,
        }
    }

    /// Ends the span: `error`, the call's failure, if any.
    pub fn end(self, error: Option<String>) {
        #[cfg(feature = "otlp")]
        if let Some(mut s) = self.inner {
            use opentelemetry::trace::{Span as _, Status};
            match error {
                None => s.set_status(Status::Ok),
                Some(e) => s.set_status(Status::error(e)),
            }
            s.end();
        }
        #[cfg(not(feature = "otlp"))]
        let _ = error;
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry::trace::{
        Span as _, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
        Tracer as _, TracerProvider as _,
    };
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Tracer};
    use passerelle_adapters::trace::TraceParent;

    pub struct Exporter {
        provider: SdkTracerProvider,
        tracer: Tracer,
    }

    impl Exporter {
        pub fn new(endpoint: &str) -> Result<Exporter, String> {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| format!("traces.otlp_endpoint {endpoint:?}: {e}"))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                // A caller's decision stands (an unsampled trace is not
                // exported); a trace the broker starts is.
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("passerelle")
                        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                        .build(),
                )
                .build();
            let tracer = provider.tracer("passerelle");
            Ok(Exporter { provider, tracer })
        }

        pub fn start(
            &self,
            name: &'static str,
            parent: Option<&TraceParent>,
            kind: SpanKind,
        ) -> (super::Span, TraceParent) {
            let cx = match parent {
                None => Context::new(),
                Some(p) => Context::new().with_remote_span_context(SpanContext::new(
                    TraceId::from_bytes(p.trace_bytes()),
                    SpanId::from_bytes(p.span_bytes()),
                    if p.sampled() {
                        TraceFlags::SAMPLED
                    } else {
                        TraceFlags::default()
                    },
                    true,
                    TraceState::default(),
                )),
            };
            let span = self
                .tracer
                .span_builder(name)
                .with_kind(kind)
                .start_with_context(&self.tracer, &cx);
            let sc = span.span_context().clone();
            let t = TraceParent::from_parts(
                sc.trace_id().to_bytes(),
                sc.span_id().to_bytes(),
                sc.is_sampled(),
            );
            (super::Span { inner: Some(span) }, t)
        }

        pub fn shutdown(&self) {
            if let Err(e) = self.provider.shutdown() {
                tracing::warn!(error = %e, "traces: the last spans could not be sent");
            }
        }
    }
}
