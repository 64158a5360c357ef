//! Every remote adapter in the repository passes the conformance kit.

mod grpc {
    passerelle_adapters::adapter_conformance!(passerelle_adapters::kit::grpc_env);
}

mod fhir_standard {
    async fn env() -> passerelle_adapters::kit::KitEnv {
        passerelle_adapters::kit::fhir_env(passerelle_adapters::fhir::Dialect::Standard).await
    }
    passerelle_adapters::adapter_conformance!(env);
}

mod fhir_openimis {
    async fn env() -> passerelle_adapters::kit::KitEnv {
        passerelle_adapters::kit::fhir_env(passerelle_adapters::fhir::Dialect::Openimis).await
    }
    passerelle_adapters::adapter_conformance!(env);
}

mod xml_shape_a {
    async fn env() -> passerelle_adapters::kit::KitEnv {
        passerelle_adapters::kit::xml_env(passerelle_adapters::sim_http::XmlShape::A).await
    }
    passerelle_adapters::adapter_conformance!(env);
}

mod xml_shape_b {
    async fn env() -> passerelle_adapters::kit::KitEnv {
        passerelle_adapters::kit::xml_env(passerelle_adapters::sim_http::XmlShape::B).await
    }
    passerelle_adapters::adapter_conformance!(env);
}

mod template {
    passerelle_adapters::adapter_conformance!(passerelle_adapters::kit::template_env);
}
