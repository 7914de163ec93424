//! librdkafka's mock cluster on a local port, for the bench and for development when no real
//! broker is at hand: `mock_broker --partitions P TOPIC...` creates the topics, prints the
//! bootstrap address and serves until killed. Mock partitions keep only their last 5 MB.
//! Not a substitute for the real-broker tests (`scripts/broker.sh start`).

use rdkafka::mocking::MockCluster;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut partitions = 4;
    let mut topics = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--partitions" {
            partitions = it.next().ok_or("--partitions N")?.parse()?;
        } else {
            topics.push(a);
        }
    }
    let mock = MockCluster::new(1)?;
    for t in &topics {
        mock.create_topic(t, partitions, 1)?;
    }
    println!("{}", mock.bootstrap_servers());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
