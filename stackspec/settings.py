"""One source for filepipe's config keys, defaults, limits and fixed names.

Both the Pulumi program (`__main__.py`, components) and local mode (`local/`) build their resources from here, so a
limit or a name cannot differ between AWS and a laptop. This module must not import Pulumi.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from handlers import jobmodel
from handlers.config import DEFAULT_UPLOAD_GRANTS_PER_HOUR, ApiConfig, LauncherConfig

PROJECT = "filepipe"
HandlerConfig = TypeVar("HandlerConfig", ApiConfig, LauncherConfig)
STACK_TAG = jobmodel.STACK_TAG
API_PREFIX = "/api"

LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)
"""The values CloudWatch Logs accepts for a log group's retention."""
NO_RESERVATION = -1
"""A reserved-concurrency setting meaning "draw from the account's unreserved pool" (pulumi-aws's own default)."""
MAX_SWEEP_INTERVAL_MINUTES = 60
MIN_TOKEN_MINUTES, MAX_TOKEN_MINUTES = 5, 24 * 60
"""Cognito's bounds for access and ID token lifetimes."""
MAX_REFRESH_TOKEN_DAYS = 3650
FAILED_JOBS_WINDOW_MINUTES = 15
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
ARN = re.compile(r"arn:[\w+=/,.@-]+:[\w+=/,.@-]+:([\w+=/,.@-]*)?:[0-9]+:[\w+=/,.@-]+(:[\w+=/,.@-]+)?(:[\w+=/,.@-]+)?")
"""Cognito's `ArnType` pattern for EmailConfiguration's SourceArn (botocore's cognito-idp service model)."""
DOMAIN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
"""Loose on purpose: enough to catch a missing `@` or a list where one address goes; SNS checks the rest."""
KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")
"""A KMS key's ARN (as EC2's ModifyEbsDefaultKmsKeyId reference shows one); IAM grants on it, so not an alias."""

ROLE_PATH = re.compile(r"/([\w+=,.@-]+/)*")
"""IAM's path syntax: slash-delimited segments (the IAM API reference's `Path` parameter)."""
POLICY_ARN = re.compile(r"arn:aws[\w-]*:iam::\d{12}:policy/[\w+=,.@/-]+")
"""A customer managed policy's ARN: `arn:${Partition}:iam::${Account}:policy/${PolicyNameWithPath}` (the Service
Authorization Reference for IAM, as parliament ships it)."""

BOUNDS: dict[str, tuple[int, int | None]] = {
    **dict.fromkeys(("max_text_length", "max_concurrent_vms", "job_timeout_minutes", "log_retention_days",
                     "upload_expiry_seconds", "download_expiry_seconds", "api_throttle_rate", "api_throttle_burst",
                     "max_active_jobs_per_user", "upload_grants_per_hour"), (1, None)),
    "failed_jobs_alarm_threshold": (0, None),
    "access_token_minutes": (MIN_TOKEN_MINUTES, MAX_TOKEN_MINUTES),
    "id_token_minutes": (MIN_TOKEN_MINUTES, MAX_TOKEN_MINUTES),
    "refresh_token_days": (1, MAX_REFRESH_TOKEN_DAYS),
    "sweep_interval_minutes": (1, MAX_SWEEP_INTERVAL_MINUTES),
    "retention_days": (0, None),
}
"""Inclusive range of each whole-number key (None: no upper bound); Cognito's bounds for token lifetimes."""

JOB_EXPIRY_ATTR = jobmodel.EXPIRES_AT

MIB = 1024 * 1024
S3_SINGLE_POST_LIMIT = 5 * 1024 * MIB
"""A presigned POST uploads one object in one request, which S3 caps at 5 GB."""

@dataclass(frozen=True)
class StackSettings:
    """Every tunable of a stack. Field names map to camelCase `pulumi config` keys (`max_file_mb` -> `maxFileMb`)."""

    instance_type: str = "t4g.micro"
    ami_parameter: str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    max_file_mb: int = 10
    max_text_length: int = 2000
    max_concurrent_vms: int = 4
    job_timeout_minutes: int = 15
    log_retention_days: int = 14
    upload_expiry_seconds: int = 300
    download_expiry_seconds: int = 300
    api_throttle_rate: int = 20
    api_throttle_burst: int = 40
    api_reserved_concurrency: int = NO_RESERVATION
    """Reserved (guaranteed and maximum) concurrency of each API function (upload, jobs, manage); `NO_RESERVATION`
    (-1) by default, as any reservation must leave 100 of the account's Lambda concurrency unreserved and a new
    account's quota is 10, so a default reservation would make a first deploy fail. Set it (e.g. 20: at the
    stage's default 20 requests/s and well under a second each, a handful run at once) in an account with a
    quota of 1000, so a flood of API requests cannot take the account's whole concurrency."""
    launcher_reserved_concurrency: int = NO_RESERVATION
    """Reserved concurrency of the launcher, and of the sweeper (the two functions that start VMs);
    `NO_RESERVATION` by default, for the same reason as `api_reserved_concurrency`.

    The VM cap does not depend on it: VM slots and job claims are conditional writes, so any number of concurrent
    launchers keeps at most `max_concurrent_vms` VMs. A reservation only guarantees them concurrency when other
    functions of the account are busy, and bounds how much they can take. The stream mapping runs one batch per
    stream shard at a time and a small jobs table has one or a few shards, so 2 is a sensible value where
    reservations are possible; 1 would serialise every launch behind the slowest RunInstances retry."""
    sweep_interval_minutes: int = 2
    """How often the sweeper runs (an EventBridge rule on AWS): at most this late, an overdue VM is terminated, a
    stuck job failed, a leaked VM slot freed and the queue moved."""
    alarm_email: str = ""
    """An address subscribed to the alarm topic (SNS sends it a confirmation mail first); empty for none."""
    failed_jobs_alarm_threshold: int = 3
    """The failed-jobs alarm goes off when more jobs than this fail within `FAILED_JOBS_WINDOW_MINUTES`."""
    extra_origins: tuple[str, ...] = field(default_factory=tuple)
    allow_self_sign_up: bool = True
    """Anyone who can reach the site may create an account (verified by an emailed code); False: only an operator
    creates users (`make invite`)."""
    email_from: str = ""
    """The sender of Cognito's messages (codes, invitations), `Name <address>` or an address verified in SES; with
    `ses_identity_arn`, Cognito sends through SES (EmailSendingAccount DEVELOPER). Empty: Cognito's own sender,
    which allows only a limited number of messages a day (see README, "Users")."""
    ses_identity_arn: str = ""
    """The ARN of the SES identity (a verified address or domain) `email_from` sends as."""
    allowed_email_domains: tuple[str, ...] = field(default_factory=tuple)
    """Self sign-up only with an email at one of these domains (exactly; a Cognito pre sign-up trigger,
    `handlers.presignup`, and the same function locally); empty: any domain. Operators' invitations are not checked."""
    max_active_jobs_per_user: int = 5
    """Jobs one user may have not yet SUCCEEDED or FAILED; one more is refused with 429 until one ends."""
    upload_grants_per_hour: int = DEFAULT_UPLOAD_GRANTS_PER_HOUR
    """Upload grants (POST /api/uploads) one user may have per clock hour; one more is refused with 429 and
    `Retry-After` (the seconds to the next hour). With `maxFileMb`, it bounds what one user can store in files that
    never become a job (removed after a day, `ORPHAN_UPLOAD_DAYS`)."""
    access_token_minutes: int = 60
    id_token_minutes: int = 60
    refresh_token_days: int = 30
    """How long a signed-in browser stays signed in without the password (refresh token lifetime)."""
    protect_data: bool = False
    """Keep the data bucket and the jobs table through `pulumi destroy` and refuse their replacement: `protect`,
    `retain_on_delete`, DynamoDB deletion protection, and no `force_destroy` (a production stack); the user pool
    gets `protect` and Cognito's deletion protection."""
    retention_days: int = 0
    """Days after which inputs, outputs and logs expire (S3 lifecycle); it also enables the jobs table's TTL on
    `JOB_EXPIRY_ATTR`, which the launcher sets on each finished job. 0 keeps everything."""
    ebs_kms_key_arn: str = ""
    """ARN of a customer-managed KMS key that encrypts the VMs' root volumes (and grants to the roles that launch
    them); empty: EBS's default key. Needed where the account's EBS encryption by default uses such a key."""

    role_path: str = ""
    """IAM path of every role the program creates (e.g. `/filepipe/`, deploy/ci-identity's `rolePath`); empty: `/`.
    Set together with `permissions_boundary`."""
    permissions_boundary: str = ""
    """ARN of the managed policy every role the program creates carries as its permissions boundary
    (deploy/ci-identity's `permissionsBoundaryArn`, which its deploy roles require); empty for none."""

    def __post_init__(self) -> None:
        problems = [*self._range_problems(), *self._format_problems()]
        if problems:
            raise ValueError("invalid filepipe config: " + "; ".join(problems))

    def _range_problems(self) -> list[str]:
        problems = []
        if not 1 <= self.max_file_bytes <= S3_SINGLE_POST_LIMIT:
            problems.append(f"maxFileMb must be between 1 and {S3_SINGLE_POST_LIMIT // MIB}")
        for name, (low, high) in BOUNDS.items():
            value = getattr(self, name)
            if high is None and value < low:
                problems.append(f"{config_key(name)} must be at least {low}")
            elif high is not None and not low <= value <= high:
                problems.append(f"{config_key(name)} must be between {low} and {high}")
        for name in ("api_reserved_concurrency", "launcher_reserved_concurrency"):
            value = getattr(self, name)
            if value != NO_RESERVATION and value < 1:
                problems.append(f"{config_key(name)} must be at least 1, or {NO_RESERVATION} for no reservation "
                                f"(0 would stop the function)")
        return problems

    def _format_problems(self) -> list[str]:
        problems = []
        if self.alarm_email and not EMAIL.fullmatch(self.alarm_email):
            problems.append(f"alarmEmail must be one e-mail address, got {self.alarm_email!r}")
        problems += _role_bound_problems(self.role_path, self.permissions_boundary)
        if self.protect_data and not self.alarm_email:
            problems.append("protectData is true but alarmEmail is empty: a stack that keeps users' data must tell "
                            "someone when its alarms go off (failed jobs, overdue VMs, function errors); set "
                            "alarmEmail to an address that is read")
        if self.ebs_kms_key_arn and not KMS_KEY_ARN.fullmatch(self.ebs_kms_key_arn):
            problems.append(f"ebsKmsKeyArn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>, "
                            f"not an alias), got {self.ebs_kms_key_arn!r}")
        if bool(self.email_from) != bool(self.ses_identity_arn):
            problems.append("emailFrom and sesIdentityArn go together: Cognito sends through SES only with both")
        if self.email_from and not EMAIL.search(self.email_from):
            problems.append(f"emailFrom must hold an email address (`Name <a@example.com>`), got {self.email_from!r}")
        if self.ses_identity_arn and not (ARN.fullmatch(self.ses_identity_arn)
                                          and self.ses_identity_arn.split(":")[2] == "ses"):
            problems.append(f"sesIdentityArn must be an SES identity's ARN (arn:aws:ses:...), got "
                            f"{self.ses_identity_arn!r}")
        bad_domains = [d for d in self.allowed_email_domains if not DOMAIN.fullmatch(d)]
        if bad_domains:
            problems.append(f"allowedEmailDomains must be lower-case domain names such as example.com, got "
                            f"{', '.join(map(repr, bad_domains))}")
        if self.log_retention_days >= 1 and self.log_retention_days not in LOG_RETENTION_DAYS:
            problems.append(f"logRetentionDays must be one of {', '.join(map(str, LOG_RETENTION_DAYS))} "
                            f"(the values CloudWatch Logs accepts); got {self.log_retention_days}")
        return problems

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * MIB

    @classmethod
    def from_config(cls, get: Callable[[str], str | None]) -> StackSettings:
        """Build settings from a lookup such as `pulumi.Config("filepipe").get`; absent keys keep their default."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = get(config_key(f.name))
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw, type(getattr(cls(), f.name)))
        return cls(**values)


def _role_bound_problems(path: str, boundary: str) -> list[str]:
    problems = []
    if bool(path) != bool(boundary):
        problems.append("rolePath and permissionsBoundary go together (deploy/ci-identity's rolePath and "
                        "permissionsBoundaryArn): set both or neither")
    if path and (not ROLE_PATH.fullmatch(path) or path == "/"):
        problems.append(f"rolePath must look like /<name>/, got {path!r}")
    if boundary and not POLICY_ARN.fullmatch(boundary):
        problems.append(f"permissionsBoundary must be a managed policy's ARN, "
                        f"arn:<partition>:iam::<account>:policy/<name>, got {boundary!r}")
    return problems


def config_key(field_name: str) -> str:
    """`max_file_mb` -> `maxFileMb`."""
    head, *rest = field_name.split("_")
    return head + "".join(part.title() for part in rest)


def _parse(name: str, raw: str, kind: type) -> Any:
    if kind is tuple:
        value = json.loads(raw) if raw.lstrip().startswith("[") else [o.strip() for o in raw.split(",")]
        return tuple(str(v) for v in value if v)
    if kind is bool:
        if raw.strip().lower() not in {"true", "false"}:
            raise ValueError(f"config {config_key(name)} must be true or false, got {raw!r}")
        return raw.strip().lower() == "true"
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"config {config_key(name)} must be a whole number, got {raw!r}") from None
    return raw


def handler_config(kind: type[HandlerConfig], settings: StackSettings, **stack_values: Any) -> HandlerConfig:
    """A handler's config: `stack_values` (names and ids the stack made), and every other field from the settings
    field of the same name, so a key keeps one name from `pulumi config` to the handler that enforces it."""
    from_settings = {f.name: getattr(settings, f.name) for f in fields(kind) if f.name not in stack_values}
    return kind(**stack_values, **from_settings)


def api_config(bucket: str, table: str, settings: StackSettings) -> ApiConfig:
    """Config of the API handlers (their Lambda environment is its `to_env()`)."""
    return handler_config(ApiConfig, settings, bucket=bucket, table=table)


def launcher_config(
    table: str, launch_template_id: str, subnet_ids: Sequence[str], *, stack_tag: str, settings: StackSettings
) -> LauncherConfig:
    """Config of the launcher, the slot release function and the sweeper (their Lambda environment is its
    `to_env()`).

    `stack_tag` is the `STACK_TAG` value the launcher puts on its VMs and the sweeper looks for (on AWS unique per
    deployment, see `components.compute.Compute.stack_tag`).
    """
    return handler_config(LauncherConfig, settings, table=table, launch_template_id=launch_template_id,
                          subnet_ids=tuple(subnet_ids), stack_tag=stack_tag)


def site_config(
    settings: StackSettings, *, region: str, user_pool_id: str, client_id: str, auth_endpoint: str | None = None
) -> dict[str, Any]:
    """The form's `config.json`: the limits it checks before asking the API, where it signs in, and the job states
    (what each is called and allows), so that the page copies none of them.

    `auth_endpoint` is Cognito's endpoint only where it is not AWS's default for `region` (local mode's emulator).
    """
    auth: dict[str, str] = {"region": region, "userPoolId": user_pool_id, "clientId": client_id}
    if auth_endpoint is not None:
        auth["endpoint"] = auth_endpoint
    return {
        "apiBase": API_PREFIX,
        "maxFileBytes": settings.max_file_bytes,
        "maxTextLength": settings.max_text_length,
        "selfSignUp": settings.allow_self_sign_up,
        "auth": auth,
        "retentionDays": settings.retention_days,
        "jobStates": jobmodel.public_states(),
    }


def settings_from_mapping(values: Mapping[str, str]) -> StackSettings:
    """Settings from a plain mapping of camelCase keys (environment-style overrides in local mode and tests)."""
    return StackSettings.from_config(values.get)
