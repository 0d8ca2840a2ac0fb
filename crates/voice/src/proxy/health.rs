//! Trunk health from OPTIONS probes and registrations (SPEC V2), run inside the
//! proxy so they share its socket.
//!
//! Each probed trunk has its own hotsite-sip [`Prober`] (its own interval and
//! thresholds) with one target; each registration-based trunk its own
//! [`RegisterClient`]. Their requests carry our Via, so the answers come back
//! to the proxy, which offers OPTIONS answers to the probers and REGISTER
//! answers to the clients (they match them by branch). Health changes go to
//! [`Trunks`](crate::routing::Trunks), whose service-state changes become
//! [`ProxyEvent::Trunk`](super::ProxyEvent::Trunk).

use std::time::Instant;

use hotsite_core::{EventKind, HealthConfig, HealthState, Target};
use hotsite_sip::message::{Response, Uri};
use hotsite_sip::prober::{AliveWhen, ProbeOutcome, Prober, ProberConfig};
use hotsite_sip::proxy::{Peer, Transmit};
use hotsite_sip::register::{Credentials, RegisterClient, RegisterConfig, RegisterEvent};

use super::trunk::Registration;
use super::{Proxy, TrunkSetup};

impl Proxy {
    pub(super) fn start_health(&mut self, trunks: &[TrunkSetup], now: Instant) {
        let sent_by = self.agent.clone();
        let from = Uri::parse(format!("sip:hotsite@{sent_by}"))
            .unwrap_or_else(|_| Uri::parse("sip:hotsite@invalid").expect("a valid URI"));
        for (index, setup) in trunks.iter().enumerate() {
            let target = Target::new(&setup.spec.carrier, &setup.spec.name);
            if let Some(probe) = &setup.probe {
                let Ok(uri) = Uri::parse(format!("sip:{}", setup.address)) else {
                    continue;
                };
                let mut config = ProberConfig::new(&sent_by, from.clone());
                config.interval = probe.interval;
                config.timeout = probe.timeout.min(probe.interval);
                config.health = HealthConfig {
                    rise: probe.rise,
                    fall: probe.fall,
                };
                config.alive = if probe.only_2xx {
                    AliveWhen::Success
                } else {
                    AliveWhen::AnyFinal
                };
                config.transaction = self.tx_config_for(setup.transport);
                config.transport = setup.transport.via_name().into();
                let prober = Prober::new(
                    config,
                    vec![(target.clone(), uri)],
                    self.rng.next_u64(),
                    now,
                );
                self.per_trunk[index].prober = Some(prober);
            }
            if let Some(register) = &setup.register {
                let host = register
                    .registrar
                    .sip()
                    .map(|sip| {
                        let host = String::from_utf8_lossy(&sip.host).into_owned();
                        match sip.port {
                            Some(port) => format!("{host}:{port}"),
                            None => host,
                        }
                    })
                    .unwrap_or_default();
                let (Ok(aor), Ok(contact)) = (
                    Uri::parse(format!("sip:{}@{host}", register.user)),
                    Uri::parse(format!("sip:{}@{sent_by}", register.user)),
                ) else {
                    tracing::warn!(trunk = %setup.spec.name, "registration skipped: the user does not make a valid URI");
                    continue;
                };
                let mut config =
                    RegisterConfig::new(register.registrar.clone(), aor, contact, &sent_by);
                config.expires = register.expires;
                config.credentials = Some(Credentials {
                    username: register.user.clone(),
                    password: register.password.clone(),
                });
                config.transaction = self.tx_config_for(setup.transport);
                config.transport = setup.transport.via_name().into();
                let client = RegisterClient::new(config, target, self.rng.next_u64(), now);
                self.per_trunk[index].registration = Some(Registration {
                    client,
                    address: Peer {
                        transport: setup.transport,
                        addr: register.address,
                    },
                });
            }
        }
        self.drive_health(now, false);
    }

    /// Runs probers and registrations: their due timers when `fire`, then
    /// their output and health changes. Every prober first, then every
    /// registration, each in trunk order.
    pub(super) fn drive_health(&mut self, now: Instant, fire: bool) {
        for trunk in 0..self.per_trunk.len() {
            let Some(prober) = &mut self.per_trunk[trunk].prober else {
                continue;
            };
            if fire && prober.poll_timeout().is_some_and(|at| at <= now) {
                prober.handle_timeout(now);
            }
            self.drain_prober(trunk);
        }
        for trunk in 0..self.per_trunk.len() {
            let Some(registration) = &mut self.per_trunk[trunk].registration else {
                continue;
            };
            if fire
                && registration
                    .client
                    .poll_timeout()
                    .is_some_and(|at| at <= now)
            {
                registration.client.handle_timeout(now);
            }
            self.drain_registration(trunk);
        }
    }

    pub(super) fn health_timeout(&self) -> Option<Instant> {
        let probes = self
            .per_trunk
            .iter()
            .filter_map(|state| state.prober.as_ref()?.poll_timeout());
        let registrations = self
            .per_trunk
            .iter()
            .filter_map(|state| state.registration.as_ref()?.client.poll_timeout());
        probes.chain(registrations).min()
    }

    /// Offers an answer to OPTIONS to the probers; true if one claimed it.
    pub(super) fn offer_probe_response(&mut self, now: Instant, response: &Response) -> bool {
        for trunk in 0..self.per_trunk.len() {
            let Some(prober) = &mut self.per_trunk[trunk].prober else {
                continue;
            };
            if !prober.handle_response(now, response) {
                continue;
            }
            // The prober reports only changes of its health; a trunk marked
            // passively while the prober stayed up comes back on the first
            // answer that counts as alive (routing.rs).
            let alive = prober.health(0) == Some(HealthState::Up)
                && prober
                    .status()
                    .first()
                    .is_some_and(|s| matches!(s.last, Some(ProbeOutcome::Alive { .. })));
            self.drain_prober(trunk);
            if alive && !self.trunks.in_service(trunk) {
                let detail = format!("OPTIONS answered {}", response.status);
                self.trunks
                    .handle_probe_health(trunk, HealthState::Up, &detail, now);
                self.drain_trunk_events();
            }
            return true;
        }
        false
    }

    /// Offers an answer to REGISTER to the clients; true if one claimed it.
    pub(super) fn offer_register_response(&mut self, now: Instant, response: &Response) -> bool {
        for trunk in 0..self.per_trunk.len() {
            let Some(registration) = &mut self.per_trunk[trunk].registration else {
                continue;
            };
            if registration.client.handle_response(now, response) {
                self.drain_registration(trunk);
                return true;
            }
        }
        false
    }

    fn drain_prober(&mut self, trunk: usize) {
        let state = &mut self.per_trunk[trunk];
        let to = state.peer;
        let Some(prober) = &mut state.prober else {
            return;
        };
        while let Some(transmit) = prober.poll_transmit() {
            self.transmits.push_back(Transmit {
                to,
                bytes: transmit.bytes,
            });
        }
        while let Some(event) = prober.poll_event() {
            if let EventKind::Health { to, cause, .. } = &event.kind {
                tracing::debug!(trunk = %event.target, ?to, %cause, "probe health");
                self.trunks.handle_probe_health(trunk, *to, cause, event.at);
                if *to == HealthState::Down {
                    self.stopped_answering.push(trunk);
                }
            }
        }
        self.drain_trunk_events();
    }

    fn drain_registration(&mut self, trunk: usize) {
        let Some(registration) = &mut self.per_trunk[trunk].registration else {
            return;
        };
        while let Some(bytes) = registration.client.poll_transmit() {
            self.transmits.push_back(Transmit {
                to: registration.address,
                bytes,
            });
        }
        while let Some(event) = registration.client.poll_event() {
            match event {
                RegisterEvent::Health(event) => {
                    if let EventKind::Health { to, cause, .. } = &event.kind {
                        self.trunks.handle_registration(trunk, *to, cause, event.at);
                    }
                }
                RegisterEvent::Failed { cause, .. } => {
                    tracing::debug!(trunk = trunk, %cause, "registration failed");
                }
                _ => {}
            }
        }
        self.drain_trunk_events();
    }
}
