//! Checks of the workflow part of a definition: stages and their tasks, the `next` jumps and
//! the graph they make (no loop, no unreachable stage), and the enterprise-request policy.

use std::collections::BTreeMap;

use toml::Spanned;

use super::{Checker, MAX_WORKING_HOURS};

/// The longest wait for a rating: a working year.
const MAX_CLOSE_UNRATED_DAYS: u32 = 250;
use crate::definition::model::{
    MatterKind, NextRule, Rating, RequestPolicy, StageDef, TaskDef, TaskDepartment,
};
use crate::definition::raw::{RawRequest, RawStage, RawTask};
use crate::form::{FieldType, FormSchema};
use crate::util::is_identifier;

pub(super) fn check_stages(
    ck: &mut Checker<'_>,
    raw: Vec<Spanned<RawStage>>,
    form: &FormSchema,
    has_pledge: bool,
) -> Vec<StageDef> {
    if raw.is_empty() {
        ck.problem(None, "stages", "a matter needs at least one stage");
    }
    let mut ids = BTreeMap::new();
    for (i, s) in raw.iter().enumerate() {
        let id = &s.get_ref().id;
        if ids.insert(id.clone(), i).is_some() {
            let line = ck.line(s);
            ck.problem(line, &format!("stage `{id}`"), "stage id is used twice");
        }
    }
    let mut lines = Vec::new();
    let mut stages = Vec::new();
    let mut gotos_ok = true;
    for spanned in raw {
        let line = ck.line(&spanned);
        let s = spanned.into_inner();
        let place = format!("stage `{}`", s.id);
        lines.push(line);
        if !is_identifier(&s.id) {
            ck.problem(
                line,
                &place,
                "id must be lower case letters, digits and `_`, starting with a letter",
            );
        }
        if s.name.trim().is_empty() {
            ck.problem(line, &place, "name must not be empty");
        }
        if s.tasks.is_empty() {
            ck.problem(line, &place, "a stage needs at least one task");
        }
        let when = ck.condition(line, &place, s.when.as_deref(), form);
        let mut tasks = Vec::new();
        for (n, spanned) in s.tasks.into_iter().enumerate() {
            let tline = ck.line(&spanned);
            let t = spanned.into_inner();
            let who = t
                .department
                .as_deref()
                .or(t.department_from.as_deref())
                .unwrap_or("?");
            let tplace = format!("{place} task {} ({who})", n + 1);
            let department = check_task_department(ck, tline, &tplace, &t, form);
            if t.deadline_hours == 0 || t.deadline_hours > MAX_WORKING_HOURS {
                ck.problem(
                    tline,
                    &tplace,
                    format!("deadline_hours must be 1 to {MAX_WORKING_HOURS}"),
                );
            }
            let twhen = ck.condition(tline, &tplace, t.when.as_deref(), form);
            if let Some(department) = department {
                tasks.push(TaskDef {
                    department,
                    title: t.title.unwrap_or_else(|| s.name.clone()),
                    deadline_hours: t.deadline_hours,
                    when: twhen,
                    route_by_region: t.route_by_region,
                });
            }
        }
        let mut next = Vec::new();
        let mut unconditional = false;
        for (n, r) in s.next.into_iter().enumerate() {
            let rplace = format!("{place} next rule {}", n + 1);
            if unconditional {
                ck.problem(
                    line,
                    &rplace,
                    "follows a rule without `when`, so it can never apply",
                );
            }
            unconditional |= r.when.is_none();
            let rwhen = ck.condition(line, &rplace, r.when.as_deref(), form);
            let Some(&target) = ids.get(&r.goto) else {
                ck.problem(
                    line,
                    &rplace,
                    format!("goto `{}` is not a stage of this matter", r.goto),
                );
                gotos_ok = false;
                continue;
            };
            next.push(NextRule {
                when: rwhen,
                goto: r.goto,
                target,
            });
        }
        stages.push(StageDef {
            id: s.id,
            name: s.name,
            name_en: s.name_en,
            when,
            tasks,
            next,
        });
    }
    for (stage, line) in stages.iter().zip(&lines) {
        let conditions = stage
            .when
            .iter()
            .chain(stage.tasks.iter().filter_map(|t| t.when.as_ref()))
            .chain(stage.next.iter().filter_map(|r| r.when.as_ref()));
        for c in conditions {
            if c.uses_pledge_accepted() && !has_pledge {
                ck.problem(
                    *line,
                    &format!("stage `{}`", stage.id),
                    format!("condition `{c}` reads pledge_accepted but the matter has no [pledge]"),
                );
            }
        }
    }
    // The graph is only meaningful once every stage and jump was understood.
    if gotos_ok && ck.problems.is_empty() {
        check_graph(ck, &stages, &lines);
    }
    stages
}

fn check_task_department(
    ck: &mut Checker<'_>,
    line: Option<usize>,
    place: &str,
    t: &RawTask,
    form: &FormSchema,
) -> Option<TaskDepartment> {
    match (&t.department, &t.department_from) {
        (Some(code), None) => {
            ck.department(line, place, "department", code);
            Some(TaskDepartment::Fixed(code.clone()))
        }
        (None, Some(path)) => {
            let Some(field) = path.strip_prefix("form.") else {
                ck.problem(
                    line,
                    place,
                    format!("department_from `{path}` must name a form field: form.<field>"),
                );
                return None;
            };
            let Some(def) = form.field(field) else {
                ck.problem(
                    line,
                    place,
                    format!("department_from: form field `{field}` is not declared in the form"),
                );
                return None;
            };
            let FieldType::Enum { allowed } = &def.ty else {
                ck.problem(
                    line,
                    place,
                    format!(
                        "department_from: form field `{field}` must be an enum of department codes"
                    ),
                );
                return None;
            };
            if !def.required {
                ck.problem(
                    line,
                    place,
                    format!("department_from: form field `{field}` must be required"),
                );
            }
            for code in allowed {
                ck.department(
                    line,
                    place,
                    &format!("department_from: allowed value of form.{field}"),
                    code,
                );
            }
            Some(TaskDepartment::FromForm(field.to_owned()))
        }
        _ => {
            ck.problem(
                line,
                place,
                "give exactly one of `department` and `department_from`",
            );
            None
        }
    }
}

/// Rejects jumps that can loop and stages that no path reaches.
fn check_graph(ck: &mut Checker<'_>, stages: &[StageDef], lines: &[Option<usize>]) {
    let n = stages.len();
    let edges: Vec<Vec<usize>> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut out = Vec::new();
            let mut exits_always = false;
            for r in &s.next {
                out.push(r.target);
                if r.when.is_none() {
                    exits_always = true;
                    break;
                }
            }
            let always_runs = s.when.is_none() && s.tasks.iter().any(|t| t.when.is_none());
            if !(always_runs && exits_always) && i + 1 < n {
                out.push(i + 1);
            }
            out
        })
        .collect();

    // Depth-first search with colours: reaching a node on the current path is a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    fn visit(
        node: usize,
        edges: &[Vec<usize>],
        colour: &mut [Colour],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        colour[node] = Colour::Grey;
        path.push(node);
        for &next in &edges[node] {
            match colour[next] {
                Colour::Grey => {
                    let start = path.iter().position(|&p| p == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next);
                    return Some(cycle);
                }
                Colour::White => {
                    if let Some(cycle) = visit(next, edges, colour, path) {
                        return Some(cycle);
                    }
                }
                Colour::Black => {}
            }
        }
        path.pop();
        colour[node] = Colour::Black;
        None
    }
    let mut colour = vec![Colour::White; n];
    for start in 0..n {
        if colour[start] != Colour::White {
            continue;
        }
        if let Some(cycle) = visit(start, &edges, &mut colour, &mut Vec::new()) {
            let names: Vec<&str> = cycle.iter().map(|&i| stages[i].id.as_str()).collect();
            // The stage whose jump closes the loop.
            let closing = cycle[cycle.len().saturating_sub(2)];
            ck.problem(
                lines[closing],
                &format!("stage `{}`", stages[closing].id),
                format!(
                    "cycle {}: jumps must lead forward so that every instance ends",
                    names.join(" → ")
                ),
            );
            break;
        }
    }

    let mut reached = vec![false; n];
    let mut todo = vec![0];
    while let Some(i) = todo.pop() {
        if i < n && !reached[i] {
            reached[i] = true;
            todo.extend(&edges[i]);
        }
    }
    for (i, stage) in stages.iter().enumerate() {
        if !reached[i] {
            ck.problem(
                lines[i],
                &format!("stage `{}`", stage.id),
                format!("is unreachable from the first stage `{}`", stages[0].id),
            );
        }
    }
}

pub(super) fn check_request(
    ck: &mut Checker<'_>,
    kind: MatterKind,
    raw: Option<Spanned<RawRequest>>,
    stages: &[StageDef],
) -> Option<RequestPolicy> {
    let place = "[request]";
    let Some(raw) = raw else {
        if kind == MatterKind::EnterpriseRequest {
            ck.problem(
                None,
                place,
                "an enterprise_request matter needs a [request] section",
            );
        }
        return None;
    };
    let line = ck.line(&raw);
    let r = raw.into_inner();
    if kind != MatterKind::EnterpriseRequest {
        ck.problem(
            line,
            place,
            "only an enterprise_request matter has a [request] section",
        );
    }
    let mut reopen_on = Vec::new();
    for s in &r.reopen_on {
        match Rating::parse(s) {
            Some(rating) => reopen_on.push(rating),
            None => ck.problem(
                line,
                place,
                format!(
                    "reopen_on: `{s}` is not a rating (satisfied, basically_satisfied, unsatisfied)"
                ),
            ),
        }
    }
    if r.answer_deadline_hours == 0 || r.answer_deadline_hours > MAX_WORKING_HOURS {
        ck.problem(
            line,
            place,
            format!("answer_deadline_hours must be 1 to {MAX_WORKING_HOURS}"),
        );
    }
    if let Some(d) = &r.supervising_department {
        ck.department(line, place, "supervising_department", d);
    }
    let close_unrated = r
        .close_unrated_after_working_days
        .unwrap_or(crate::definition::model::DEFAULT_CLOSE_UNRATED_AFTER_WORKING_DAYS);
    if !(1..=MAX_CLOSE_UNRATED_DAYS).contains(&close_unrated) {
        ck.problem(
            line,
            place,
            format!("close_unrated_after_working_days must be 1 to {MAX_CLOSE_UNRATED_DAYS}"),
        );
    }
    let reopen_stage = match r.reopen_stage {
        Some(id) => {
            if !stages.iter().any(|s| s.id == id) {
                ck.problem(
                    line,
                    place,
                    format!("reopen_stage `{id}` is not a stage of this matter"),
                );
            }
            id
        }
        None => stages.last().map(|s| s.id.clone()).unwrap_or_default(),
    };
    if let Some(id) = &r.assign_stage {
        match stages.iter().position(|s| s.id == *id) {
            None => ck.problem(
                line,
                place,
                format!("assign_stage `{id}` is not a stage of this matter"),
            ),
            Some(i) if i + 1 >= stages.len() => ck.problem(
                line,
                place,
                format!("assign_stage `{id}` is the last stage: there is no stage to assign"),
            ),
            Some(_) => {}
        }
    }
    Some(RequestPolicy {
        reopen_on,
        answer_deadline_hours: r.answer_deadline_hours,
        supervising_department: r.supervising_department,
        reopen_stage,
        close_unrated_after_working_days: close_unrated,
        assign_stage: r.assign_stage,
    })
}
