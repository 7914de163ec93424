//! Broker administration: explicit topic creation (never rely on auto-create) and a
//! readiness probe (a metadata request), used by `simulate`, `admin` and the tests.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::sink::kafka::client_config;
use crate::source::kafka_config::KafkaConfig;

/// Creates the topics that do not exist yet, each with `partitions` partitions.
pub async fn ensure_topics(
    k: &KafkaConfig,
    topics: &[&str],
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(k, crate::sink::kafka::Role::Admin).create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin.create_topics(&new, &opts).await? {
        match r {
            Ok(t) => tracing::info!(topic = %t, partitions, "topic created"),
            Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %t, "topic exists")
            }
            Err((t, e)) => anyhow::bail!("creating topic {t}: {e}"),
        }
    }
    Ok(())
}

/// The group mode's internal topics (see `service::group`), created if missing: the
/// classified events (one partition: one detector reads them in order) and the detector's
/// checkpoints (one partition, compacted: only the newest chunks of each slot are kept).
pub async fn ensure_group_topics(k: &KafkaConfig) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(k, crate::sink::kafka::Role::Admin).create()?;
    let classified = k.classified_topic();
    let state = k.state_topic();
    let new = [
        NewTopic::new(&classified, 1, TopicReplication::Fixed(1)),
        NewTopic::new(&state, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact"),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let problem = match admin.create_topics(&new, &opts).await {
        Ok(results) => {
            let mut problem = None;
            for r in results {
                match r {
                    Ok(t) => tracing::info!(topic = %t, "group topic created"),
                    Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => {
                        tracing::debug!(topic = %t, "group topic exists")
                    }
                    Err((t, e)) => problem = Some(format!("creating {t}: {e}")),
                }
            }
            problem
        }
        Err(e) => Some(format!("creating the group topics: {e}")),
    };
    let Some(problem) = problem else {
        return Ok(());
    };
    // Creation refused (no CreateTopics permission, or a broker without the API): fine if
    // an operator created them.
    let consumer: BaseConsumer = client_config(k, crate::sink::kafka::Role::Admin).create()?;
    let md = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    let exists = |name: &str| {
        md.topics()
            .iter()
            .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
    };
    if exists(&classified) && exists(&state) {
        tracing::warn!(%problem, "the group topics exist; going on");
        return Ok(());
    }
    anyhow::bail!(
        "{problem} (create them by hand: {classified} with 1 partition, {state} with 1 partition and cleanup.policy=compact)"
    )
}

/// Waits until the broker answers a metadata request; returns the broker count.
pub fn wait_ready(k: &KafkaConfig, timeout: Duration) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = client_config(k, crate::sink::kafka::Role::Admin).create()?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match consumer.fetch_metadata(None, Duration::from_secs(2)) {
            Ok(md) if !md.brokers().is_empty() => return Ok(md.brokers().len()),
            Ok(_) => {}
            Err(e) if std::time::Instant::now() >= deadline => {
                anyhow::bail!("broker {} not answering: {e}", k.brokers)
            }
            Err(_) => {}
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("broker {} lists no brokers", k.brokers);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
