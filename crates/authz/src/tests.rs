//! Walks [`TABLE`]: every action × every role × own and other scope.

use tongban_types::CreditCode;

use super::*;

const OWN_CC: &str = "91350100M000100Y43";

fn cc(s: &str) -> CreditCode {
    CreditCode::parse(s).unwrap()
}

fn who(role: Role) -> Identity {
    Identity {
        subject: format!("{role}-1"),
        role,
        department: matches!(role, Role::Clerk | Role::Supervisor).then(|| "eco_env".into()),
        region: None,
        credit_code: (role == Role::Applicant).then(|| cc(OWN_CC)),
    }
}

fn policy() -> Policy {
    Policy::new(
        Integrators::parse(
            r#"
[[integrators]]
sub = "integrator-1"
name = "portal"
enterprises = ["91350100M000100Y43"]
matters = ["env.eia.report_form"]
"#,
            "test",
        )
        .unwrap(),
    )
}

/// A scope everyone with any right on `action` has: own enterprise, registered matter, the
/// caller's department everywhere, unclaimed task.
fn own() -> Scope {
    Scope::application(OWN_CC, "env.eia.report_form", vec!["eco_env".into()])
        .with_lead(Some("eco_env".into()))
        .with_task(TaskScope {
            department: "eco_env".into(),
            ..TaskScope::default()
        })
}

/// Nobody but an admin (or reference data) reaches this.
fn other() -> Scope {
    Scope::application("other-enterprise", "other.matter", vec!["water".into()])
        .with_lead(Some("water".into()))
        .with_task(TaskScope {
            department: "water".into(),
            ..TaskScope::default()
        })
}

const ROLES: [Role; 5] = [
    Role::Applicant,
    Role::Clerk,
    Role::Supervisor,
    Role::Integrator,
    Role::Admin,
];

#[test]
fn table_is_in_action_order_and_complete() {
    assert_eq!(TABLE.len(), Action::ALL.len());
    for (i, a) in Action::ALL.iter().enumerate() {
        assert_eq!(TABLE[i].action, *a, "row {i}");
        assert_eq!(row_of(*a).action, *a);
    }
}

#[test]
fn every_cell_decides_own_and_other_scope_as_its_rule_says() {
    let p = policy();
    for a in Action::ALL {
        for role in ROLES {
            let r = rule(a, role);
            let me = who(role);
            let on_own = p.authorize(&me, a, &own());
            let on_other = p.authorize(&me, a, &other());
            let (own_ok, other_ok) = match r {
                Rule::Never => (false, false),
                Rule::Everything | Rule::Anyone | Rule::OwnInbox | Rule::RegisteredIntegrator => {
                    (true, true)
                }
                Rule::OwnEnterprise
                | Rule::Registered
                | Rule::InWorkflow
                | Rule::TaskDepartment
                | Rule::TaskAssigneeOrUnclaimed
                | Rule::LeadDepartment => (true, false),
            };
            assert_eq!(
                on_own.is_ok(),
                own_ok,
                "{a} by {role} on own scope: {on_own:?}"
            );
            assert_eq!(
                on_other.is_ok(),
                other_ok,
                "{a} by {role} on other scope: {on_other:?}"
            );
            if let Err(d) = on_other {
                assert!(matches!(d, Denied::Forbidden { .. }), "{d}");
                assert_eq!(d.to_status().code(), tonic::Code::PermissionDenied);
            }
        }
    }
}

#[test]
fn holes_of_issue_9_are_closed() {
    let p = policy();
    let clerk = who(Role::Clerk);
    // Clerks neither withdraw nor supplement, even their own department's applications.
    for a in [Action::WithdrawApplication, Action::SupplementMaterials] {
        assert!(p.authorize(&clerk, a, &own()).is_err());
    }
    // Delegating a task someone else claimed: not a clerk; the department's supervisor may.
    let claimed = own().with_task(TaskScope {
        department: "eco_env".into(),
        assignee: "someone-else".into(),
        ..TaskScope::default()
    });
    assert!(p.authorize(&clerk, Action::DelegateTask, &claimed).is_err());
    assert!(
        p.authorize(&who(Role::Supervisor), Action::DelegateTask, &claimed)
            .is_ok()
    );
    let mine = own().with_task(TaskScope {
        department: "eco_env".into(),
        assignee: clerk.subject.clone(),
        ..TaskScope::default()
    });
    assert!(p.authorize(&clerk, Action::DelegateTask, &mine).is_ok());
    let moving = own().with_task(TaskScope {
        department: "eco_env".into(),
        moves_department: true,
        ..TaskScope::default()
    });
    assert!(p.authorize(&clerk, Action::DelegateTask, &moving).is_err());
    // Retry and replay: supervisors of the lead department only; not a clerk of it.
    assert!(p.authorize(&clerk, Action::RetryDelivery, &own()).is_err());
    let not_lead = own().with_lead(Some("water".into()));
    assert!(
        p.authorize(&who(Role::Supervisor), Action::ReplayDeadLetters, &not_lead)
            .is_err()
    );
    assert!(
        p.authorize(
            &who(Role::Supervisor),
            Action::ReplayDeadLetters,
            &own().with_lead(None)
        )
        .is_err()
    );
}

#[test]
fn township_clerks_see_only_their_office() {
    let p = policy();
    let mut township = who(Role::Clerk);
    township.department = Some("eco_env.songyuan".into());
    let routed = |office: &str| {
        Scope::application(OWN_CC, "m", vec!["eco_env".into(), office.into()]).with_task(
            TaskScope {
                department: "eco_env".into(),
                office: office.into(),
                ..TaskScope::default()
            },
        )
    };
    for a in [
        Action::GetApplication,
        Action::ClaimTask,
        Action::DecideTask,
    ] {
        assert!(
            p.authorize(&township, a, &routed("eco_env.songyuan"))
                .is_ok(),
            "{a}"
        );
        assert!(
            p.authorize(&township, a, &routed("eco_env.zhengdun"))
                .is_err(),
            "{a}"
        );
        // The department's own staff see their offices' work.
        assert!(
            p.authorize(&who(Role::Clerk), a, &routed("eco_env.zhengdun"))
                .is_ok()
        );
    }
    // Listing the whole department is not for a township clerk.
    let dept = Scope::departments(vec!["eco_env".into()]);
    assert!(p.authorize(&township, Action::ListTasks, &dept).is_err());
}

#[test]
fn missing_claims_are_unauthenticated_never_all() {
    let p = policy();
    let mut clerk = who(Role::Clerk);
    clerk.department = None;
    let d = p
        .authorize(&clerk, Action::GetApplication, &own())
        .unwrap_err();
    assert_eq!(d.to_status().code(), tonic::Code::Unauthenticated);
    let mut applicant = who(Role::Applicant);
    applicant.credit_code = None;
    let d = p
        .authorize(&applicant, Action::ListNotifications, &Scope::default())
        .unwrap_err();
    assert_eq!(d.to_status().code(), tonic::Code::Unauthenticated);
}

#[test]
fn unregistered_integrators_are_denied() {
    let p = policy();
    let mut stranger = who(Role::Integrator);
    stranger.subject = "unknown-system".into();
    for a in [
        Action::SubmitApplication,
        Action::GetApplication,
        Action::RegisterWebhook,
        Action::ListNotifications,
    ] {
        let d = p.authorize(&stranger, a, &own()).unwrap_err();
        assert!(d.to_string().contains("not registered"), "{d}");
    }
    // Registered for the enterprise, but not for this matter.
    let other_matter = Scope::application(OWN_CC, "other.matter", vec![]);
    assert!(
        p.authorize(
            &who(Role::Integrator),
            Action::GetApplication,
            &other_matter
        )
        .is_err()
    );
}

#[test]
fn registry_file_is_checked() {
    assert!(
        Integrators::parse(
            "[[integrators]]\nsub = \"x\"\nenterprises = []\nmatters = [\"*\"]\n",
            "t"
        )
        .is_err()
    );
    assert!(Integrators::parse("[[integrators]]\nsub = \"x\"\nenterprises = [\"*\"]\nmatters = [\"*\"]\n[[integrators]]\nsub = \"x\"\nenterprises = [\"*\"]\nmatters = [\"*\"]\n", "t").is_err());
    let dir = tempfile::tempdir().unwrap();
    assert!(
        Integrators::load(dir.path().join("none.toml"))
            .unwrap()
            .is_empty()
    );
    let shipped = Integrators::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/integrators.toml"
    ))
    .unwrap();
    assert!(!shipped.is_empty());
}
