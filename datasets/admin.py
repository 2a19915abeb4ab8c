"""The catalog in the Django admin, usable at full size (25,000 datasets, millions of files):
no full-table counts, foreign keys as raw ids, searches that can use the name indexes.

Writes to the catalog (registering files, replicas, closing, freezing) belong to the
services and the API; the admin is for looking and for fixing the odd record."""

from django.contrib import admin

from pandamon.admin_base import BigTableAdmin, RecordAdmin

from .models import (
    ActivityPriority,
    ChannelControl,
    Claim,
    ConsistencyCheck,
    ContainerMember,
    Dataset,
    DatasetFile,
    DatasetReplica,
    DatasetVersion,
    DeletionProposal,
    File,
    FileReplica,
    PlacementDecision,
    PlacementRule,
    PlacementTarget,
    ReplicaCallback,
    SiteDDMConfig,
    SitePreference,
    SiteReplicaTotals,
    Subscription,
    TransferChannelStat,
    TransferRequest,
)


class VersionInline(admin.TabularInline):
    model = DatasetVersion
    extra = 0
    fields = ["number", "state", "n_files", "bytes", "created_at", "closed_at"]
    readonly_fields = fields
    can_delete = False


class ReplicaInline(admin.TabularInline):
    model = DatasetReplica
    extra = 0
    fields = ["site", "files_present", "bytes_present", "complete_at", "expires_at", "modified_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(Dataset)
class DatasetAdmin(BigTableAdmin):
    list_display = ["name", "kind", "state", "category", "n_files", "bytes", "owner", "modified_at", "erased_at"]
    list_filter = ["kind", "state", "category"]
    # "^name": a prefix search, which the unique index on name serves.
    search_fields = ["^name"]
    raw_id_fields = ["owner"]
    readonly_fields = ["duid", "latest_version", "n_files", "bytes", "created_at", "modified_at"]
    inlines = [VersionInline, ReplicaInline]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(BigTableAdmin):
    list_display = ["dataset", "number", "state", "n_files", "bytes", "created_at", "closed_at"]
    list_filter = ["state"]
    search_fields = ["^dataset__name"]
    raw_id_fields = ["dataset"]


@admin.register(File)
class FileAdmin(BigTableAdmin):
    list_display = ["lfn", "guid", "fsize", "adler32", "origin_dataset", "created_at"]
    search_fields = ["^lfn", "=guid"]
    raw_id_fields = ["origin_dataset"]


@admin.register(DatasetFile)
class DatasetFileAdmin(BigTableAdmin):
    list_display = ["dataset", "file", "version_added"]
    search_fields = ["^dataset__name", "^file__lfn"]
    raw_id_fields = ["dataset", "file"]


@admin.register(ContainerMember)
class ContainerMemberAdmin(BigTableAdmin):
    list_display = ["container", "member", "added_at"]
    search_fields = ["^container__name", "^member__name"]
    raw_id_fields = ["container", "member"]


@admin.register(FileReplica)
class FileReplicaAdmin(BigTableAdmin):
    list_display = ["file", "site", "state", "pfn", "created_at"]
    list_filter = ["state", "site"]
    search_fields = ["^file__lfn"]
    raw_id_fields = ["file"]


@admin.register(DatasetReplica)
class DatasetReplicaAdmin(BigTableAdmin):
    list_display = ["dataset", "site", "files_present", "bytes_present", "complete_at", "expires_at", "modified_at"]
    list_filter = ["site"]
    search_fields = ["^dataset__name"]
    raw_id_fields = ["dataset"]


@admin.register(Claim)
class ClaimAdmin(BigTableAdmin):
    list_display = ["replica", "owner_name", "reason", "expires_at", "created_at"]
    search_fields = ["owner_name", "reason"]
    raw_id_fields = ["replica", "owner"]


@admin.register(Subscription)
class SubscriptionAdmin(BigTableAdmin):
    list_display = ["dataset", "site", "state", "activity", "priority", "owner_name", "reason", "modified_at"]
    list_filter = ["state", "activity", "site"]
    search_fields = ["^dataset__name", "owner_name"]
    raw_id_fields = ["dataset", "owner"]
    readonly_fields = ["evaluated_at", "stuck_at", "done_at", "created_at", "modified_at"]


@admin.register(TransferRequest)
class TransferRequestAdmin(BigTableAdmin):
    list_display = ["file", "source", "destination", "state", "activity", "priority", "attempts", "tool", "error",
                    "finished_at"]  # fmt: skip
    list_filter = ["state", "activity", "destination"]
    search_fields = ["^file__lfn"]
    raw_id_fields = ["file"]


@admin.register(TransferChannelStat)
class TransferChannelStatAdmin(BigTableAdmin):
    list_display = ["hour", "source", "destination", "files_done", "bytes_done", "files_failed", "seconds"]
    list_filter = ["source", "destination"]


@admin.register(ReplicaCallback)
class ReplicaCallbackAdmin(BigTableAdmin):
    list_display = ["dataset", "site", "kind", "state", "url", "owner_name", "attempts", "last_error", "fired_at"]
    list_filter = ["kind", "state"]
    search_fields = ["^dataset__name", "owner_name"]
    raw_id_fields = ["dataset", "owner"]


@admin.register(ConsistencyCheck)
class ConsistencyCheckAdmin(BigTableAdmin):
    list_display = ["site", "started_at", "files_on_storage", "replicas_in_catalog", "n_dark", "n_lost", "fixed",
                    "error"]  # fmt: skip
    list_filter = ["site"]


# -- The distribution policy and DDM operations (docs/ddm-policy.md) --------------------------------
# Configuration (rules, preferences, priorities, site settings) may be edited here; decisions,
# pauses and deletions are made on the /ddm/ pages, whose services check roles and protections,
# so the admin only shows them.


@admin.register(PlacementRule)
class PlacementRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "order", "target", "media", "activity", "priority", "applied_at"]
    list_filter = ["enabled", "target", "media", "activity"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_by_name", "created_at", "modified_at", "applied_at"]


class PlacementTargetInline(admin.TabularInline):
    model = PlacementTarget
    extra = 0
    can_delete = False
    fields = ["site", "outcome", "share_start", "share_end", "note"]
    readonly_fields = fields


@admin.register(PlacementDecision)
class PlacementDecisionAdmin(RecordAdmin):
    list_display = ["dataset", "rule", "state", "n_subscribed", "against_preferences", "evaluated_at"]
    list_filter = ["state", "against_preferences", "rule"]
    search_fields = ["^dataset__name"]
    raw_id_fields = ["dataset"]
    inlines = [PlacementTargetInline]


@admin.register(SitePreference)
class SitePreferenceAdmin(admin.ModelAdmin):
    list_display = ["site", "kind", "pattern", "created_by_name", "created_at"]
    list_filter = ["kind", "site"]
    readonly_fields = ["created_by_name", "created_at"]


@admin.register(ActivityPriority)
class ActivityPriorityAdmin(admin.ModelAdmin):
    list_display = ["activity", "rank", "updated_by_name", "updated_at"]
    readonly_fields = ["updated_by_name", "updated_at"]


@admin.register(SiteDDMConfig)
class SiteDDMConfigAdmin(admin.ModelAdmin):
    list_display = ["site", "media", "paused", "user_area_quota_bytes", "user_area_used_bytes"]
    list_filter = ["media", "paused"]
    readonly_fields = ["paused", "paused_reason", "paused_by", "paused_at", "user_area_used_bytes",
                       "user_area_counted_at"]  # fmt: skip


@admin.register(SiteReplicaTotals)
class SiteReplicaTotalsAdmin(RecordAdmin):
    list_display = ["site", "files", "bytes"]


@admin.register(ChannelControl)
class ChannelControlAdmin(RecordAdmin):
    list_display = ["source", "destination", "paused", "reason", "changed_by", "changed_at"]
    list_filter = ["paused"]


@admin.register(DeletionProposal)
class DeletionProposalAdmin(RecordAdmin):
    list_display = ["dataset", "site", "reason", "state", "bytes", "proposed_at", "decided_by", "executed_at"]
    list_filter = ["state", "reason"]
    search_fields = ["^dataset__name"]
    raw_id_fields = ["dataset"]


@admin.register(PlacementTarget)
class PlacementTargetAdmin(RecordAdmin):
    list_display = ["decision", "site", "outcome", "share_start", "share_end", "note"]
    list_filter = ["outcome"]
    raw_id_fields = ["decision"]
