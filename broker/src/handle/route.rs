//! The name server's part: every topic is served by this broker alone, with the configured
//! number of queues (one for a group's retry and dead-letter topics, as RocketMQ makes them).

use std::sync::Arc;

use serde_json::json;

use super::{Handled, fields};
use crate::Shared;
use crate::codes::response;
use crate::remoting::Command;

/// Read and write permission (RocketMQ's PERM_READ | PERM_WRITE).
const PERM_READ_WRITE: u32 = 4 | 2;

/// How many queues `topic` has.
pub(crate) fn queues_of(shared: &Shared, topic: &str) -> u32 {
    if topic.starts_with("%RETRY%") || topic.starts_with("%DLQ%") {
        1
    } else {
        shared.config.queues_per_topic
    }
}

fn broker_data(shared: &Shared) -> serde_json::Value {
    json!({
        "cluster": shared.config.cluster,
        "brokerName": shared.config.broker_name,
        "brokerAddrs": { "0": shared.addr.to_string() },
        "zoneName": null,
        "enableActingMaster": false,
    })
}

pub(super) fn topic_route(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let topic = fields(cmd).str("topic")?;
    if let Err(e) = mqstore::message::validate_topic(topic) {
        return Ok(cmd.response(response::TOPIC_NOT_EXIST).with_remark(e.to_string()));
    }
    let queues = queues_of(shared, topic);
    let route = json!({
        "orderTopicConf": null,
        "queueDatas": [{
            "brokerName": shared.config.broker_name,
            "readQueueNums": queues,
            "writeQueueNums": queues,
            "perm": PERM_READ_WRITE,
            "topicSysFlag": 0,
        }],
        "brokerDatas": [broker_data(shared)],
        "filterServerTable": {},
        "topicQueueMappingInfo": null,
    });
    Ok(cmd
        .response(response::SUCCESS)
        .with_body(route.to_string().into_bytes()))
}

pub(super) fn cluster_info(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let info = json!({
        "brokerAddrTable": { shared.config.broker_name.clone(): broker_data(shared) },
        "clusterAddrTable": { shared.config.cluster.clone(): [shared.config.broker_name] },
    });
    Ok(cmd.response(response::SUCCESS).with_body(info.to_string().into_bytes()))
}
