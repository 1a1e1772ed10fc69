"""Admin routes: login/logout, A/B dashboard, predictions, model versions, experiment weights."""
from __future__ import annotations

import math
from datetime import date
from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_limiter.util import get_remote_address
from sqlalchemy import select

from app.admin import auth, bp, queries
from app.admin.charts import time_chart
from app.admin.forms import ActionForm, LoginForm, WeightsForm
from app.common.text import ascii_int
from app.db import Experiment, Feedback, Prediction
from app.db.experiments import ARM_MODELS
from app.experiments import assignment, stats
from app.experiments.metrics import DECIDE_AFTER, SUCCESS_SHARE, prediction_outcome
from app.experiments.report import build_report, default_experiment
from app.extensions import db, limiter
from app.playlists.holder import model_status
from app.security.audit import audit
from app.web.stored import members_of, playlist_view

PAGE_SIZE = 50


def _login_limit() -> str:
    return str(current_app.config.get("ADMIN_LOGIN_RATE_LIMIT", "10 per minute"))


def _login_address_limit() -> str:
    return str(current_app.config.get("ADMIN_LOGIN_ADDRESS_RATE_LIMIT", "50 per 15 minutes"))


def _login_user_limit() -> str:
    return str(current_app.config.get("ADMIN_LOGIN_USER_RATE_LIMIT", "300 per hour"))


def _submitted_name() -> str:
    """The user name the login form names, as the limits count it: one parse for every key
    and the check itself (the form only; JSON is refused on this route)."""
    value = request.form.get("username")
    return value.strip().lower()[:100] if isinstance(value, str) else ""


def _trusted_device() -> bool:
    return auth.trusted_device(_submitted_name())


def _login_pair_key() -> str:
    """Failures lock the (user name, address) pair, or (user name, device) for a browser that
    has logged in as that name before: guessing from elsewhere never locks the admin out."""
    device = auth.trusted_device_id(_submitted_name())
    where = f"device:{device}" if device else f"address:{get_remote_address()}"
    return f"admin-login-pair:{_submitted_name()}|{where}"


def _login_address_key() -> str:
    """One address trying many names (spraying) is capped too; each try costs a hash check."""
    return "admin-login-address:" + get_remote_address()


def _login_name_key() -> str:
    """A much larger budget per user name from every address bounds distributed guessing;
    a trusted device of that name is exempt, so the real admin still gets in."""
    return "admin-login-name:" + _submitted_name()


def _login_failed(response) -> bool:
    return response.status_code == 401


@bp.before_request
def _who() -> None:
    g.admin_user = auth.current_admin()


@bp.after_request
def _no_store(response):
    """Admin pages show live, private numbers: never cached by browsers or proxies."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.app_context_processor
def _admin_context() -> dict[str, Any]:
    return {"admin_user": g.get("admin_user"), "action_form": ActionForm}


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_login_pair_key,
               deduct_when=_login_failed)
@limiter.limit(_login_address_limit, methods=["POST"], key_func=_login_address_key,
               deduct_when=_login_failed, exempt_when=_trusted_device)
@limiter.limit(_login_user_limit, methods=["POST"], key_func=_login_name_key,
               deduct_when=_login_failed, exempt_when=_trusted_device)
def login():
    if g.admin_user and request.method == "GET":
        return redirect(auth.safe_next(request.args.get("next")))
    if request.method == "POST" and request.mimetype not in FORM_TYPES:
        # Flask-WTF would read a JSON body as the form; the limits read the form. One path.
        return render_template("admin/login.html", form=LoginForm(formdata=None),
                               error="Log in with the form on this page.",
                               configured=auth.login_configured()), 415
    form = LoginForm(formdata=request.form if request.method == "POST" else None)
    error = None
    status = 200
    if form.validate_on_submit():
        username = auth.check_credentials(form.username.data or "", form.password.data or "")
        if username:
            auth.log_in(username)
            audit("admin login: %s from %s", username, request.remote_addr)
            response = redirect(auth.safe_next(request.args.get("next")), code=303)
            auth.remember_device(response, username)
            return response
        audit("failed admin login for %r from %s", (form.username.data or "")[:100],
              request.remote_addr)
        error, status = "Wrong user name or password.", 401
    elif request.method == "POST":
        error, status = "Enter a user name and a password.", 400
    return render_template("admin/login.html", form=form, error=error,
                           configured=auth.login_configured()), status


@bp.post("/logout")
def logout():
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    if g.admin_user:
        audit("admin logout: %s from %s", g.admin_user, request.remote_addr)
    auth.log_out()
    flash("You are logged out.", "ok")
    return redirect(url_for("admin.login"), code=303)


def _experiment_from_args() -> tuple[Experiment | None, list[Experiment]]:
    experiments = assignment.list_experiments()
    wanted = request.args.get("experiment", type=int)
    chosen = next((e for e in experiments if e.id == wanted), None)
    if chosen is None:
        chosen = default_experiment(experiments)
    return chosen, experiments


def _pct_label(v: float) -> str:
    return f"{v * 100:.0f}%"


def _count_label(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or float(v).is_integer() else f"{v:.1f}"


@bp.get("/")
@auth.login_required
def dashboard():
    experiment, experiments = _experiment_from_args()
    sequential = request.args.get("interval") == "sequential"
    report = build_report(experiment, sequential=sequential) if experiment else None
    charts = []
    if report and report.days:
        charts.append(time_chart(
            "Playlists served per day", report.days,
            {a.name: [p.served for p in report.daily[a.name]] for a in report.arms},
            y_format=_count_label,
            tooltip=lambda d, v: f"{d:%Y-%m-%d}: {v:.0f} playlists"))
        charts.append(time_chart(
            "Success rate per day (decided playlists)", report.days,
            {a.name: [p.rate for p in report.daily[a.name]] for a in report.arms},
            y_max=1.0, y_format=_pct_label,
            tooltip=lambda d, v: f"{d:%Y-%m-%d}: {v * 100:.1f}% successful"))
    status = model_status()
    return render_template("admin/dashboard.html", report=report, experiments=experiments,
                           experiment=experiment, charts=charts, model=status,
                           success_share=SUCCESS_SHARE, min_units=stats.MIN_UNITS,
                           min_srm_units=stats.MIN_SRM_UNITS,
                           decide_days=DECIDE_AFTER.days)


def _parse_day(value: str | None) -> date | None:
    """A YYYY-MM-DD day this page can filter by; the last day of year 9999 has no next day to
    end the range at, so it is refused like any other bad date."""
    try:
        day = date.fromisoformat(value) if value else None
    except ValueError:
        return None
    return day if day is None or day < date.max else None


@bp.get("/predictions")
@auth.login_required
def predictions():
    args = request.args
    filters = {
        "arm": args.get("arm", "").strip()[:32],
        "model": args.get("model", "").strip()[:32],
        "user": args.get("user", "").strip()[:12],
        "date_from": args.get("date_from", "").strip()[:10],
        "date_to": args.get("date_to", "").strip()[:10],
        "endpoint": args.get("endpoint", "").strip()[:64],
    }
    problems: list[str] = []
    member = ascii_int(filters["user"], 9) if filters["user"] else None
    if filters["user"] and member is None:
        problems.append("The user filter takes a numeric user id.")
    start, end = _parse_day(filters["date_from"]), _parse_day(filters["date_to"])
    if filters["date_from"] and start is None or filters["date_to"] and end is None:
        problems.append("Dates are written YYYY-MM-DD.")
    chosen = queries.PredictionFilters(arm=filters["arm"], model=filters["model"],
                                       endpoint=filters["endpoint"], member=member,
                                       first_day=start, last_day=end)
    total = queries.count(chosen)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(1, args.get("page", 1, type=int) or 1), pages)
    rows = queries.page(chosen, page, PAGE_SIZE)
    active = {k: v for k, v in filters.items() if v}
    return render_template("admin/predictions.html", rows=rows, filters=filters,
                           options=queries.filter_options(), total=total, page=page,
                           pages=pages, active_filters=active, problems=problems,
                           members_of=members_of)


@bp.get("/predictions/<prediction_id>")
@auth.login_required
def prediction_detail(prediction_id: str):
    prediction = db.session.get(Prediction, prediction_id[:64])
    if prediction is None:
        abort(404)
    view = playlist_view(prediction)
    outcome, member_outcomes = prediction_outcome(prediction.id)
    order = {uid: i for i, uid in enumerate(members_of(prediction))}
    member_outcomes.sort(key=lambda m: order.get(m.user_id, len(order)))
    names = {m.user_id: m.name for m in view.members}
    feedback = db.session.scalars(select(Feedback).where(Feedback.prediction_id == prediction.id)
                                  .order_by(Feedback.created_at, Feedback.id).limit(500)).all()
    return render_template("admin/prediction.html", view=view, p=prediction, outcome=outcome,
                           member_outcomes=member_outcomes, names=names, feedback=feedback,
                           success_share=SUCCESS_SHARE)


def _flatten(metrics: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested metric dicts as ``a / b / c`` rows, so any evaluation layout can be shown."""
    if isinstance(metrics, dict):
        out: list[tuple[str, Any]] = []
        for key, value in metrics.items():
            out.extend(_flatten(value, f"{prefix} / {key}" if prefix else str(key)))
        return out
    return [(prefix, metrics)]


@bp.get("/models")
@auth.login_required
def models():
    from app.modelstore import registry
    from app.recommender.metrics_summary import headline

    versions = list(reversed(registry.versions()))
    status = model_status()

    active_id = next((v.id for v in versions if v.active), None)
    compared = versions[:6]
    figures = {v.id: headline(v.metrics) for v in compared}
    labels = list(dict.fromkeys(k for f in figures.values() for k in f))
    return render_template("admin/models.html", versions=versions, status=status,
                           active_id=active_id, flatten=_flatten, compared=compared,
                           figures=figures, labels=labels)


@bp.post("/models/<version>/activate")
@auth.login_required
def activate_model(version: str):
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    from app.modelstore import registry

    try:
        registry.activate(version[:64])  # loads and verifies the artifact first
    except LookupError:
        abort(404)
    except registry.ActivationError as exc:
        db.session.rollback()
        audit("admin %s: model version %s refused: %s", g.admin_user, version[:64], exc)
        flash(f"Not activated: {exc}. The active version is unchanged.", "error")
        return redirect(url_for("admin.models"), code=303)
    audit("admin %s activated model version %s", g.admin_user, version)
    flash(f"Model version {version} is now active; servers pick it up within seconds.", "ok")
    return redirect(url_for("admin.models"), code=303)


@bp.get("/health")
@auth.login_required
def health():
    """The details /health keeps from anonymous callers: errors, paths, counts."""
    from app import health as checks

    result = checks.check(counts=True)
    return render_template("admin/health.html", health=result), result.http_status


@bp.get("/experiments")
@auth.login_required
def experiments():
    items = [(e, assignment.arm_counts(e)) for e in assignment.list_experiments()]
    return render_template("admin/experiments.html", items=items, form=WeightsForm(),
                           arm_models=ARM_MODELS)


def _is_stopped(experiment: Experiment) -> bool:
    """Stopped experiments are a record: read-only (no weights, no restart) in the admin."""
    return not experiment.active and experiment.stopped_at is not None


def _confirm(title: str, message: str, action: str, button: str):
    """The confirmation step of a state change: the same POST again with ``confirm=1``."""
    fields = [(k, v) for k, v in request.form.items(multi=True)
              if k not in ("csrf_token", "confirm")]
    return render_template("admin/confirm.html", title=title, message=message, action=action,
                           button=button, fields=fields)


def _audit(action: str, experiment: Experiment, detail: str = "") -> None:
    audit("audit: admin %s %s experiment %s%s", g.admin_user, action, experiment.name,
          f" ({detail})" if detail else "")


@bp.post("/experiments/create")
@auth.login_required
def create_experiment():
    form = WeightsForm()
    if not form.validate_on_submit():
        abort(400)
    name = request.form.get("name", "").strip()[:100]
    activate = request.form.get("activate") == "1"
    try:
        weights = form.weights(ARM_MODELS, new=True)
    except ValueError:
        flash("Weights must be numbers (for example 0.5).", "error")
        return redirect(url_for("admin.experiments"), code=303)
    if request.form.get("confirm") != "1":
        shares = ", ".join(f"{arm} {w:g}" for arm, w in weights.items()) or "no arms"
        return _confirm("Create an experiment?",
                        f"Create “{name}” with weights {shares}"
                        + (" and make it the active experiment now (the active one stops)."
                           if activate else "; it stays inactive until you activate it."),
                        url_for("admin.create_experiment"), "Create")
    try:
        experiment = assignment.create_experiment(name, weights, activate=activate)
        db.session.commit()
    except assignment.ExperimentError as exc:
        db.session.rollback()
        flash(f"Not created: {exc}.", "error")
        return redirect(url_for("admin.experiments"), code=303)
    _audit("created" + (" and activated" if activate else ""), experiment, f"weights {weights}")
    flash(f"Experiment “{experiment.name}” created"
          + (" and active." if activate else "; activate it when ready."), "ok")
    return redirect(url_for("admin.experiments"), code=303)


def _changeable(form, experiment_id: int, refusal: str):
    """The experiment a change is about, and the answer when it cannot change: 400 without a
    valid form, 404 when unknown, a message and a redirect when it is stopped."""
    if not form.validate_on_submit():
        abort(400)
    experiment = db.session.get(Experiment, experiment_id)
    if experiment is None:
        abort(404)
    if _is_stopped(experiment):
        flash(f"“{experiment.name}” is stopped; {refusal}", "error")
        return experiment, redirect(url_for("admin.experiments"), code=303)
    return experiment, None


def _experiment_action(experiment_id: int, action: str):
    experiment, refused = _changeable(ActionForm(), experiment_id,
                                      "a stopped experiment is kept as it is.")
    if refused is not None:
        return refused
    if request.form.get("confirm") != "1":
        if action == "activate":
            active = assignment.active_experiment()
            text_ = (f"Make “{experiment.name}” the active experiment? /predict assigns new "
                     f"users by its weights from now on"
                     + (f", and “{active.name}” stops for good." if active else "."))
        else:
            text_ = (f"Stop “{experiment.name}”? /predict then serves the advanced model to "
                     f"everyone, and the experiment becomes read-only.")
        return _confirm(f"{action.capitalize()} the experiment?", text_,
                        url_for(f"admin.{action}_experiment", experiment_id=experiment.id),
                        action.capitalize())
    try:
        if action == "activate":
            assignment.activate_experiment(experiment.name)
        else:
            assignment.stop_experiment(experiment.name)
    except assignment.ExperimentError as exc:
        db.session.rollback()
        flash(f"Not changed: {exc}.", "error")
        return redirect(url_for("admin.experiments"), code=303)
    _audit("activated" if action == "activate" else "stopped", experiment)
    flash(f"“{experiment.name}” is {'active' if action == 'activate' else 'stopped'}.", "ok")
    return redirect(url_for("admin.experiments"), code=303)


@bp.post("/experiments/<int(max=2147483647):experiment_id>/activate")
@auth.login_required
def activate_experiment(experiment_id: int):
    return _experiment_action(experiment_id, "activate")


@bp.post("/experiments/<int(max=2147483647):experiment_id>/stop")
@auth.login_required
def stop_experiment(experiment_id: int):
    return _experiment_action(experiment_id, "stop")


@bp.post("/experiments/<int(max=2147483647):experiment_id>/builder")
@auth.login_required
def experiment_builder(experiment_id: int):
    """Whether the public builder's "A/B" playlists count in the experiment (off by default:
    anyone can post the builder form, so its playlists are not evidence unless the admin
    vouches for its callers, e.g. behind a login)."""
    experiment, refused = _changeable(ActionForm(), experiment_id,
                                      "a stopped experiment is kept as it is.")
    if refused is not None:
        return refused
    include = request.form.get("include") == "1"
    if request.form.get("confirm") != "1":
        return _confirm("Change what counts?",
                        (f"Count the builder’s “A/B test arm” playlists as evidence in "
                         f"“{experiment.name}”? Anyone who can open the builder can then add "
                         "playlists to the experiment." if include else
                         f"Keep the builder’s playlists outside “{experiment.name}”?"),
                        url_for("admin.experiment_builder", experiment_id=experiment.id),
                        "Include" if include else "Exclude")
    assignment.set_include_builder(experiment.name, include)
    _audit("included the builder in" if include else "excluded the builder from", experiment)
    flash(f"Builder playlists {'count in' if include else 'are outside'} “{experiment.name}”.",
          "ok")
    return redirect(url_for("admin.experiments"), code=303)


@bp.post("/experiments/<int(max=2147483647):experiment_id>/weights")
@auth.login_required
def set_weights(experiment_id: int):
    form = WeightsForm()
    experiment, refused = _changeable(form, experiment_id, "its weights are kept as they were.")
    if refused is not None:
        return refused
    try:
        weights = form.weights([arm.name for arm in experiment.arms])
    except ValueError:
        flash("Weights must be numbers (for example 0.5).", "error")
        return redirect(url_for("admin.experiments"), code=303)
    try:
        assignment.set_weights(experiment.name, weights)
    except assignment.ExperimentError as exc:
        db.session.rollback()
        flash(f"Not changed: {exc}.", "error")
        return redirect(url_for("admin.experiments"), code=303)
    _audit("re-weighted", experiment, f"weights {weights}")
    flash(f"New weights for “{experiment.name}” apply to users not yet assigned; "
          "everyone already assigned keeps their arm.", "ok")
    return redirect(url_for("admin.experiments"), code=303)

