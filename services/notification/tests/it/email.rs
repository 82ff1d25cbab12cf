//! E-mail: one message per notification, in the applicant's language, through an SMTP sink.

use std::time::Duration;

use tongban_testkit::{Backend, eventually};

use crate::common::*;

async fn email_goes_out_once_in_the_applicants_language(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let zh = submitted(ZH_APPLICANT, "linxiao@example.com", "zh-CN");
    let en = submitted(EN_APPLICANT, "buyer@example.com", "en");
    h.publish(&[&zh, &en, &zh]).await?;
    let mails = eventually(WAIT, "two e-mails", || async {
        let m = h.mails.lock().ok()?.clone();
        (m.len() >= 2).then_some(m)
    })
    .await?;
    let to_zh = mails
        .iter()
        .find(|m| m.contains("linxiao@example.com"))
        .ok_or_else(|| anyhow::anyhow!("no mail to the zh applicant: {mails:?}"))?;
    let to_en = mails
        .iter()
        .find(|m| m.contains("buyer@example.com"))
        .ok_or_else(|| anyhow::anyhow!("no mail to the en applicant"))?;
    assert_eq!(subject(to_zh)?, "申请已受理：竹木复合板材项目");
    assert_eq!(subject(to_en)?, "Application accepted: 竹木复合板材项目");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.mails.lock().map(|m| m.len()).unwrap_or_default(), 2);
    assert_eq!(
        h.count("SELECT COUNT(*) AS n FROM emails WHERE sent_ms IS NOT NULL")
            .await,
        2
    );
    Ok(())
}

tongban_testkit::on_both!(email_goes_out_once_in_the_applicants_language,);
