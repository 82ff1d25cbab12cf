//! Bounded storage: events parked past the retention (their `application.submitted` never came)
//! are given up in batches; events parked more recently stay and are still delivered.

use crate::common::*;

async fn parked_events_past_retention_are_pruned_in_batches(
    backend: Backend,
) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    // Four approvals overtake their submissions: all four parked.
    let apps: Vec<(Envelope, Envelope)> =
        (0..4).map(|_| application()).collect::<Result<_, _>>()?;
    h.publish(
        &apps
            .iter()
            .map(|(_, approved)| approved)
            .collect::<Vec<_>>(),
    )
    .await?;
    tongban_testkit::eventually(Duration::from_secs(30), "four parked events", || async {
        (h.count_where("SELECT COUNT(*) AS n FROM parked_events")
            .await
            == 4)
            .then_some(())
    })
    .await?;
    // Three of them were parked 31 days ago.
    let old = tongban_storage::now_ms() - chrono::Duration::days(31).num_milliseconds();
    for (_, approved) in &apps[..3] {
        let n = h
            .count_where(&format!(
                "SELECT COUNT(*) AS n FROM parked_events WHERE event_id = '{}'",
                approved.event_id
            ))
            .await;
        anyhow::ensure!(n == 1, "{} not parked", approved.event_id);
        use sea_orm::ConnectionTrait;
        h.db.execute_unprepared(&format!(
            "UPDATE parked_events SET parked_at = {old} WHERE event_id = '{}'",
            approved.event_id
        ))
        .await?;
    }

    let pruner = tongban_dispatch::parked::ParkedPruner::new(h.db.clone()).with_batch(2);
    assert_eq!(
        pruner.prune().await?,
        3,
        "three old ones, in two statements"
    );
    assert_eq!(pruner.prune().await?, 0);
    let left = h
        .count_where(&format!(
            "SELECT COUNT(*) AS n FROM parked_events WHERE event_id = '{}'",
            apps[3].1.event_id
        ))
        .await;
    assert_eq!(left, 1, "the recent one stays");
    assert_eq!(
        h.count_where("SELECT COUNT(*) AS n FROM parked_events")
            .await,
        1
    );

    // The kept one still reaches the platforms when its submission arrives.
    h.publish(&[&apps[3].0]).await?;
    h.wait_all_delivered(1).await?;
    Ok(())
}

tongban_testkit::on_both!(parked_events_past_retention_are_pruned_in_batches);
