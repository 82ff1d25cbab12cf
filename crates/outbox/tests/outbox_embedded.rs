//! Outbox → relay → embedded bus → consumer, on SQLite (the `tongban dev` stack).

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_event_is_published_and_rolled_back_one_is_not() -> anyhow::Result<()> {
    commit_publishes_rollback_does_not(sqlite_local("ob_commit").await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_committed_without_relay_is_published_after_restart() -> anyhow::Result<()> {
    backlog_published_after_restart(sqlite_local("ob_backlog").await?, 100).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_publish_and_mark_is_applied_once() -> anyhow::Result<()> {
    duplicates_applied_once(sqlite_local("ob_dupes").await?, 60).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transiently_failing_event_is_retried_in_place_and_garbage_is_dead_lettered()
-> anyhow::Result<()> {
    redelivery_and_dead_letter(sqlite_local("ob_redeliver").await?, 12).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_event_is_dead_lettered_at_once() -> anyhow::Result<()> {
    rejected_event_is_dead_lettered_at_once_in(sqlite_local("ob_reject").await?, 12).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_2000_events_in_bounded_batches() -> anyhow::Result<()> {
    relay_batches(sqlite_local("ob_batches").await?, 2_000, 300).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_carries_the_relays_publish_span() -> anyhow::Result<()> {
    message_carries_the_publish_span(sqlite_local("ob_traced").await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_inbox_and_published_outbox_rows_are_pruned_in_batches() -> anyhow::Result<()> {
    prune_in_batches(sqlite_local("ob_prune").await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_records_a_batch_in_one_statement() -> anyhow::Result<()> {
    inbox_records_a_batch(sqlite_local("ob_inbox_batch").await?).await
}
