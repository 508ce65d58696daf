//! Shared by the VM end-to-end tests (e2e_pxe.rs, e2e_provision.rs): the collector's operator
//! API from inside the lab's namespace.

use std::time::Duration;

use plasma_tests::e2e::lab::Lab;

/// GET `path` from the collector's API as the operator, from inside the lab's namespace.
pub fn operator_get<T: serde::de::DeserializeOwned + Send>(
    lab: &Lab,
    path: &str,
) -> Result<T, String> {
    let url = format!("{}{path}", lab.collector_url());
    let ca = std::fs::read(lab.secrets.join("ca/ca-cert.pem")).map_err(|e| e.to_string())?;
    let mut id =
        std::fs::read(lab.secrets.join("operator/operator-cert.pem")).map_err(|e| e.to_string())?;
    id.push(b'\n');
    id.extend(
        std::fs::read(lab.secrets.join("operator/operator-key.pem")).map_err(|e| e.to_string())?,
    );
    lab.ns
        .enter(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(10))
                    .tls_certs_only(
                        reqwest::Certificate::from_pem_bundle(&ca).map_err(|e| e.to_string())?,
                    )
                    .identity(reqwest::Identity::from_pem(&id).map_err(|e| e.to_string())?)
                    .build()
                    .map_err(|e| e.to_string())?;
                let resp = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| format!("GET {url}: {e}"))?;
                let status = resp.status();
                let body = resp.text().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("GET {url}: {status}: {body}"));
                }
                serde_json::from_str(&body).map_err(|e| format!("GET {url}: {e}: {body}"))
            })
        })
        .map_err(|e| e.to_string())?
}
