//! DMTF Redfish (DSP0266) over HTTPS, with HTTP Basic authentication (no sessions: Basic is
//! enough for the common BMCs and sushy-tools). What this driver relies on, by DMTF schema name
//! (DSP8010):
//! - `ServiceRoot` at `/redfish/v1/`: its `Systems` link (`@odata.id`) to the
//!   `ComputerSystemCollection`, whose `Members` are the `ComputerSystem`s. The machine is the
//!   member whose `Id` is the configured system, else the only member.
//! - `ComputerSystem.PowerState`: `On` and `Off`; anything else (`PoweringOn`, `Paused`...) is
//!   [`PowerState::Unknown`].
//! - `ComputerSystem.Boot`, set by PATCH on the system (with `If-Match` when it has an ETag):
//!   `BootSourceOverrideTarget = "Pxe"`, `BootSourceOverrideEnabled = "Once"`,
//!   `BootSourceOverrideMode = "UEFI" | "Legacy"`, read back afterwards because some BMCs
//!   accept the PATCH and ignore it.
//! - The action `#ComputerSystem.Reset`, POSTed to the `target` URI the system's `Actions`
//!   give, with `ResetType` `On`, `ForceRestart` or `ForceOff`.
//!
//! Power changes are not awaited: BMCs apply them asynchronously, so callers poll
//! [`Bmc::power_state`]. No proxy is ever used. The reqwest client brings its own rustls
//! crypto provider (aws-lc-rs, reqwest's `rustls` feature), so nothing is installed globally.
//! The client is reqwest's blocking one: call the driver from a thread, not an async task.

use std::error::Error as StdError;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{ACCEPT, ETAG, HeaderValue, IF_MATCH};
use reqwest::{Certificate, Method, StatusCode, Url};
use serde_json::{Value, json};

use super::{Action, Bmc, BmcError, BootMode, Credentials, PowerState, Tls};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const SERVICE_ROOT: &str = "/redfish/v1/";
const RESET: &str = "#ComputerSystem.Reset";

/// One ComputerSystem behind a Redfish service, found on first use and kept. Its `Debug`
/// shows the username, never the password ([`super::Password`]).
#[derive(Debug)]
pub struct Redfish {
    /// `scheme://host[:port]`, never with credentials.
    base: String,
    credentials: Option<Credentials>,
    system: Option<String>,
    client: Client,
    found: OnceLock<System>,
}

#[derive(Debug)]
struct System {
    url: String,
    id: String,
    reset_target: String,
}

impl Redfish {
    /// `base_url` is `https://host[:port]` (or `http://` for an emulator); `system` the
    /// ComputerSystem `Id`, needed when the BMC manages several. No request is sent here.
    pub fn new(
        base_url: &str,
        credentials: Option<Credentials>,
        system: Option<String>,
        tls: Tls,
    ) -> Result<Redfish, BmcError> {
        let base = parse_base(base_url)?;
        let client = client(&base, tls).map_err(|reason| BmcError::Protocol {
            bmc: format!("redfish {base}"),
            reason,
        })?;
        let found = OnceLock::new();
        Ok(Redfish {
            base,
            credentials,
            system,
            client,
            found,
        })
    }

    fn protocol(&self, reason: String) -> BmcError {
        BmcError::Protocol {
            bmc: self.describe(),
            reason,
        }
    }

    /// An `@odata.id` (an absolute path) as a URL on this BMC.
    fn url(&self, link: &str) -> Result<String, BmcError> {
        match link.strip_prefix(&self.base) {
            _ if link.starts_with('/') => Ok(format!("{}{link}", self.base)),
            Some(path) if path.starts_with('/') => Ok(link.to_owned()),
            _ => Err(self.protocol(format!("the link {link:?} leads away from the BMC"))),
        }
    }

    /// One request: the JSON answer of a GET (`Null` otherwise) and its ETag.
    fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        if_match: Option<HeaderValue>,
    ) -> Result<(Value, Option<HeaderValue>), BmcError> {
        let what = format!("{method} {url}");
        tracing::debug!(bmc = %self.base, "{what}");
        let is_get = method == Method::GET;
        let mut request = self
            .client
            .request(method, url)
            .header(ACCEPT, "application/json");
        request = request.header("OData-Version", "4.0");
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(c.password.expose()));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(etag) = if_match {
            request = request.header(IF_MATCH, etag);
        }
        let response = request.send().map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let username = self.credentials.as_ref().map(|c| c.username.as_str());
            let username = username.unwrap_or("(no credentials given)").to_owned();
            return Err(BmcError::Auth {
                bmc: self.describe(),
                username,
            });
        }
        let etag = response.headers().get(ETAG).cloned();
        let text = response.text().map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            let message = redfish_message(&text);
            return Err(self.protocol(format!("{what}: HTTP {status}{message}")));
        }
        if !is_get {
            return Ok((Value::Null, etag));
        }
        let json = serde_json::from_str(&text)
            .map_err(|e| self.protocol(format!("{what}: the answer is not JSON: {e}")))?;
        Ok((json, etag))
    }

    fn get(&self, url: &str) -> Result<Value, BmcError> {
        Ok(self.call(Method::GET, url, None, None)?.0)
    }

    fn transport_error(&self, e: &reqwest::Error) -> BmcError {
        if let Some(tls) = rustls_error(e) {
            return self.protocol(format!(
                "TLS: {tls} (give the CA of its certificate as the BMC's ca_file, or accept any \
                 certificate with insecure)"
            ));
        }
        let reason = chain(e);
        if e.is_connect() || e.is_timeout() || e.is_request() {
            BmcError::Unreachable {
                bmc: self.describe(),
                reason,
            }
        } else {
            self.protocol(reason)
        }
    }

    fn system(&self) -> Result<&System, BmcError> {
        if let Some(found) = self.found.get() {
            return Ok(found);
        }
        let system = self.discover()?;
        Ok(self.found.get_or_init(|| system))
    }

    /// Service root → `Systems` → the member with the wanted `Id`, or the only member.
    fn discover(&self) -> Result<System, BmcError> {
        let root = self.get(&self.url(SERVICE_ROOT)?)?;
        let Some(systems) = root["Systems"]["@odata.id"].as_str() else {
            return Err(self.protocol("its service root has no Systems link".to_owned()));
        };
        let collection = self.url(systems)?;
        let members = self.get(&collection)?;
        let members = members["Members"].as_array().into_iter().flatten();
        let mut members: Vec<&str> = members.filter_map(|m| m["@odata.id"].as_str()).collect();
        if members.is_empty() {
            return Err(self.protocol(format!("{collection} lists no ComputerSystem")));
        }
        if let Some(wanted) = &self.system {
            // The member whose path ends in the id is most likely the one: ask it first.
            let suffix = format!("/{wanted}");
            members.sort_by_key(|m| !m.trim_end_matches('/').ends_with(&suffix));
        }
        let mut ids = Vec::new();
        for member in &members {
            let url = self.url(member)?;
            let body = self.get(&url)?;
            let id = body["Id"].as_str().unwrap_or_default();
            let only = self.system.is_none() && members.len() == 1;
            if only || self.system.as_deref() == Some(id) {
                return self.parse_system(url, &body);
            }
            ids.push(format!("{id:?}"));
        }
        let ids = ids.join(", ");
        Err(self.protocol(match &self.system {
            Some(wanted) => format!("no ComputerSystem has the Id {wanted:?}; it has {ids}"),
            None => format!("it manages several ComputerSystems ({ids}): name one as the system"),
        }))
    }

    fn parse_system(&self, url: String, body: &Value) -> Result<System, BmcError> {
        let Some(id) = body["Id"].as_str() else {
            return Err(self.protocol(format!("the ComputerSystem {url} has no Id")));
        };
        let reset = &body["Actions"][RESET];
        let Some(target) = reset["target"].as_str() else {
            return Err(self.protocol(format!("the ComputerSystem {id:?} offers no {RESET}")));
        };
        Ok(System {
            id: id.to_owned(),
            reset_target: self.url(target)?,
            url,
        })
    }

    fn reset(&self, reset_type: &str) -> Result<(), BmcError> {
        let system = self.system()?;
        let body = reset_body(reset_type);
        self.call(Method::POST, &system.reset_target, Some(&body), None)?;
        Ok(())
    }

    /// Checks the `Boot` a system reports after the one-time PXE boot was asked.
    fn check_boot(&self, boot: &Value, mode: BootMode) -> Result<(), BmcError> {
        let fields = ["Target", "Enabled", "Mode"];
        let [target, enabled, set_mode] = fields.map(|f| &boot[format!("BootSourceOverride{f}")]);
        let right = [
            *target == "Pxe",
            *enabled == "Once" || *enabled == "Continuous",
            set_mode.is_null() || *set_mode == mode_name(mode),
        ];
        if let Some(i) = right.iter().position(|right| !right) {
            return Err(self.protocol(format!(
                "the BMC accepted the one-time PXE boot but then reports BootSourceOverride{} \
                 {}: it ignored the request",
                fields[i],
                [target, enabled, set_mode][i]
            )));
        }
        // sushy-tools and libvirt-backed BMCs only know continuous overrides.
        if *enabled == "Continuous" {
            tracing::warn!(
                bmc = %self.describe(),
                "the BMC made the PXE boot override continuous, not once: the machine boots \
                 from the network until the override is changed"
            );
        }
        Ok(())
    }
}

impl Bmc for Redfish {
    fn describe(&self) -> String {
        let id = self.found.get().map(|s| s.id.as_str());
        match id.or(self.system.as_deref()) {
            Some(id) => format!("redfish {} (System {id})", self.base),
            None => format!("redfish {}", self.base),
        }
    }

    fn power_state(&self) -> Result<PowerState, BmcError> {
        let system = self.get(&self.system()?.url)?;
        Ok(match system["PowerState"].as_str() {
            Some("On") => PowerState::On,
            Some("Off") => PowerState::Off,
            _ => PowerState::Unknown,
        })
    }

    fn pxe_boot_once(&self, mode: BootMode) -> Result<(), BmcError> {
        let url = &self.system()?.url;
        let (current, etag) = self.call(Method::GET, url, None, None)?;
        let etag = etag.or_else(|| HeaderValue::from_str(current["@odata.etag"].as_str()?).ok());
        self.call(Method::PATCH, url, Some(&boot_body(mode)), etag)?;
        self.check_boot(&self.get(url)?["Boot"], mode)
    }

    fn power_on(&self) -> Result<(), BmcError> {
        self.reset("On")
    }

    fn power_cycle(&self) -> Result<(), BmcError> {
        self.reset("ForceRestart")
    }

    fn power_off(&self) -> Result<(), BmcError> {
        self.reset("ForceOff")
    }

    fn plan(&self, action: Action) -> Vec<String> {
        let mut lines = Vec::new();
        let (system, reset) = match self.found.get() {
            Some(found) => (found.url.clone(), found.reset_target.clone()),
            None => {
                let id = self.system.as_deref().unwrap_or("<system>");
                let base = &self.base;
                lines.push(format!(
                    "# first GET {base}{SERVICE_ROOT}, its Systems collection and members, to \
                     find the ComputerSystem {id}; its path and {RESET} target come from there"
                ));
                let url = format!("{base}{SERVICE_ROOT}Systems/{id}");
                (url.clone(), format!("{url}/Actions/ComputerSystem.Reset"))
            }
        };
        if let Some(c) = &self.credentials {
            lines.push(format!("# HTTP Basic authentication as {:?}", c.username));
        }
        let post = |reset_type: &str| format!("POST {reset} {}", reset_body(reset_type));
        match action {
            Action::PowerState => lines.push(format!("GET {system}")),
            Action::PxeBootOnce(mode) => lines.extend([
                format!("GET {system}"),
                format!("PATCH {system} {}", boot_body(mode)),
                format!("GET {system}"),
            ]),
            Action::PowerOn => lines.push(post("On")),
            Action::PowerCycle => lines.push(post("ForceRestart")),
            Action::PowerOff => lines.push(post("ForceOff")),
        }
        lines
    }
}

/// The HTTP client: 5 s to connect, 30 s per request, no proxy, certificates as `tls` says.
fn client(base: &str, tls: Tls) -> Result<Client, String> {
    let mut builder = Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .user_agent(concat!("plasma-operator/", env!("CARGO_PKG_VERSION")));
    if let Tls::Verify { ca_file: Some(ca) } = &tls {
        let shown = ca.display();
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read the CA file {shown}: {e}"))?;
        let certs = Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("the CA file {shown} is not PEM: {e}"))?;
        if certs.is_empty() {
            return Err(format!("the CA file {shown} holds no PEM certificate"));
        }
        builder = builder.tls_certs_merge(certs);
    }
    if tls == Tls::Insecure {
        tracing::warn!(
            bmc = %base,
            "TLS certificate checks are off for this BMC (tls insecure): whoever sits between \
             here and it can read its credentials and fake its answers"
        );
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build its HTTP client: {}", chain(&e)))
}

fn mode_name(mode: BootMode) -> &'static str {
    match mode {
        BootMode::Uefi => "UEFI",
        BootMode::Legacy => "Legacy",
    }
}

fn boot_body(mode: BootMode) -> Value {
    json!({"Boot": {
        "BootSourceOverrideTarget": "Pxe",
        "BootSourceOverrideEnabled": "Once",
        "BootSourceOverrideMode": mode_name(mode),
    }})
}

fn reset_body(reset_type: &str) -> Value {
    json!({ "ResetType": reset_type })
}

/// `scheme://host[:port]` from the inventory's address, which must have no path and no
/// credentials (those are refused, and the address then not echoed).
fn parse_base(input: &str) -> Result<String, BmcError> {
    let url = Url::parse(input).ok().filter(|u| {
        matches!(u.scheme(), "https" | "http") && u.host().is_some() && u.path() == "/"
    });
    let url = url.filter(|u| u.query().is_none() && u.fragment().is_none());
    let url = url.filter(|u| u.username().is_empty() && u.password().is_none());
    let shown = (!input.contains('@')).then_some(input);
    let shown = shown.unwrap_or("(address withheld)");
    url.map(|u| u.origin().ascii_serialization())
        .ok_or_else(|| BmcError::Protocol {
            bmc: format!("redfish {shown}"),
            reason: "the address must be https://host[:port], without path or credentials"
                .to_owned(),
        })
}

/// The Redfish `error.message` (and extended messages) of an error answer, else its text.
fn redfish_message(body: &str) -> String {
    let text = || Value::String(body.trim().chars().take(200).collect());
    let json: Value = serde_json::from_str(body).unwrap_or_else(|_| text());
    let info = json["error"]["@Message.ExtendedInfo"].as_array();
    let messages: Vec<&str> = [&json, &json["error"]["message"]]
        .into_iter()
        .chain(info.into_iter().flatten().map(|info| &info["Message"]))
        .filter_map(Value::as_str)
        .filter(|m| !m.is_empty())
        .collect();
    match messages.is_empty() {
        true => String::new(),
        false => format!(": {}", messages.join("; ")),
    }
}

/// An error and its causes, each once.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        cause = c.source();
    }
    text
}

/// The rustls error behind `e`, looking inside io::Errors too: their source() skips what they
/// wrap, and tokio-rustls's io::Error reaches here wrapped in another one.
fn rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let io = e.downcast_ref::<std::io::Error>();
    let inner = io.and_then(std::io::Error::get_ref);
    (inner.and_then(|inner| rustls_error(inner))).or_else(|| e.source().and_then(rustls_error))
}
