//! `tongban audit verify`: reads a service's database directly and checks every audit chain
//! against the service's signed checkpoints ([`tongban_audit::verify`]). Clean: exit 0; any
//! finding: each printed, exit 5.

use tongban_cli::args::AuditVerifyArgs;

/// Exit status when verify finds tampering.
pub(crate) const EXIT_FINDINGS: u8 = 5;

/// Runs the check and prints the report; `Ok(true)` when clean.
pub(crate) async fn verify(args: AuditVerifyArgs) -> anyhow::Result<bool> {
    let keys = args
        .public_key
        .iter()
        .map(|p| tongban_audit::anchor::load_verifying_key(p))
        .collect::<Result<Vec<_>, _>>()?;
    let checkpoints = tongban_audit::anchor::read_checkpoints(&args.checkpoints)?;
    let db = tongban_storage::connect(&args.database).await?;
    let report =
        tongban_audit::verify::verify(&db, &checkpoints, &keys, args.service.as_deref()).await?;
    for f in &report.findings {
        println!("{f}");
    }
    println!(
        "{} chains, {} entries; {} valid checkpoints covering {} chains; {}",
        report.chains,
        report.entries,
        report.checkpoints,
        report.anchored_chains,
        if report.is_clean() {
            "verified ✓".to_string()
        } else {
            format!("{} findings ✗", report.findings.len())
        }
    );
    Ok(report.is_clean())
}
