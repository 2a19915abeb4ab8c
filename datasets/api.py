"""REST API of the catalog: /api/v1/datasets/, /containers/, /files/, /replicas/ (docs/catalog-api.md).

Request bodies of the bulk calls are checked by the services (datasets.services.files
clean_file_spec) rather than by a DRF serializer per file: registration comes by the
hundred thousand files, and a serializer per file would cost more than the database
work. The serializers below document those bodies in the OpenAPI schema.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from pandamon.api import KeysetPagination
from pandamon.errors import InvalidInput
from pandamon.streaming import NDJSONRenderer, ndjson_response, wants_stream
from sites.models import Site

from . import selectors
from .choices import DatasetKind
from .filters import DatasetFilterSet, FileFilterSet
from .models import Dataset, DatasetReplica, File
from .naming import NAME_PATTERN
from .services import catalog, containers, replicas

NAME_IN_URL = NAME_PATTERN.pattern.strip("^$")
SITE_IN_URL = r"[A-Za-z0-9_.\-]+"
MAX_LFNS_PER_LOOKUP = 100_000


# --- What the calls answer ------------------------------------------------------------------


class DatasetSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "name", "duid", "kind", "state", "owner", "latest_version", "n_files", "bytes", "category",
            "series", "number", "physics", "stage", "format", "release", "created_at", "modified_at",
        ]  # fmt: skip


class VersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    vuid = serializers.UUIDField()
    state = serializers.CharField()
    n_files = serializers.IntegerField()
    bytes = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class DatasetDetailSerializer(DatasetSerializer):
    versions = VersionSerializer(many=True, read_only=True)

    class Meta(DatasetSerializer.Meta):
        fields = DatasetSerializer.Meta.fields + ["versions"]


class ContainerSerializer(DatasetSerializer):
    members = serializers.SerializerMethodField()

    class Meta(DatasetSerializer.Meta):
        fields = DatasetSerializer.Meta.fields + ["members"]

    def get_members(self, container) -> list[str]:
        return list(selectors.container_members(container=container).values_list("name", flat=True))


class FileRowSerializer(serializers.Serializer):
    lfn = serializers.CharField()
    guid = serializers.UUIDField()
    fsize = serializers.IntegerField()
    adler32 = serializers.CharField()
    md5 = serializers.CharField()
    events = serializers.IntegerField(allow_null=True)
    version_added = serializers.IntegerField(required=False)


class FileSerializer(serializers.ModelSerializer):
    origin_dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = File
        fields = ["lfn", "guid", "fsize", "adler32", "md5", "events", "origin_dataset", "created_at"]


class FileDetailSerializer(FileSerializer):
    datasets = serializers.SerializerMethodField()

    class Meta(FileSerializer.Meta):
        fields = FileSerializer.Meta.fields + ["datasets"]

    def get_datasets(self, file) -> list[str]:
        return list(file.memberships.order_by("dataset__name").values_list("dataset__name", flat=True))


class DatasetReplicaSerializer(serializers.Serializer):
    """A dataset at a site (documents replica_out, which builds it)."""

    dataset = serializers.CharField()
    site = serializers.CharField()
    cloud = serializers.CharField()
    storage_endpoint = serializers.CharField()
    files_present = serializers.IntegerField()
    bytes_present = serializers.IntegerField()
    n_files = serializers.IntegerField()
    complete = serializers.BooleanField()
    modified_at = serializers.DateTimeField()


def replica_out(row):
    """A row of selectors.dataset_replica_rows as the API shows it (plain code: listings stream it by the thousand)."""
    return {
        "dataset": row["dataset_name"], "site": row["site_name"], "cloud": row["cloud"],
        "storage_endpoint": row["storage_endpoint"], "files_present": row["files_present"],
        "bytes_present": row["bytes_present"], "n_files": row["n_files"],
        "complete": row["files_present"] >= row["n_files"], "modified_at": row["modified_at"],
    }  # fmt: skip


class ClaimSerializer(serializers.Serializer):
    owner_name = serializers.CharField()
    reason = serializers.CharField()
    expires_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()


# --- What the calls take (documentation of the bodies; see the module docstring) ------------


class CatalogFileSpecSerializer(serializers.Serializer):
    lfn = serializers.CharField(help_text="Letters, digits, . _ - + : (no slash); unique in the catalog.")
    fsize = serializers.IntegerField(min_value=0, help_text="Bytes.")
    adler32 = serializers.CharField(help_text="8 hex digits (an ad: prefix is accepted).")
    guid = serializers.UUIDField(required=False)
    md5 = serializers.CharField(required=False)
    events = serializers.IntegerField(required=False)


class DatasetSpecSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=DatasetKind.choices, required=False)
    files = CatalogFileSpecSerializer(many=True, required=False)


class RegisterDatasetsSerializer(serializers.Serializer):
    datasets = DatasetSpecSerializer(many=True)


class FilesBodySerializer(serializers.Serializer):
    files = CatalogFileSpecSerializer(many=True)


class LocationSerializer(serializers.Serializer):
    site = serializers.CharField()
    complete = serializers.BooleanField(default=False, help_text="The site holds every file of the dataset.")


class ClaimRequestSerializer(serializers.Serializer):
    lifetime_s = serializers.IntegerField(min_value=60, max_value=365 * 86400)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class MembersSerializer(serializers.Serializer):
    datasets = serializers.ListField(child=serializers.CharField(max_length=255), allow_empty=False, max_length=10000)


class ReplicaSpecSerializer(serializers.Serializer):
    lfn = serializers.CharField()
    pfn = serializers.CharField(required=False, help_text="Default: the site's deterministic path for the LFN.")


class RegisterReplicasSerializer(serializers.Serializer):
    site = serializers.CharField()
    replicas = ReplicaSpecSerializer(many=True)


class LookupSerializer(serializers.Serializer):
    lfns = serializers.ListField(child=serializers.CharField(max_length=255), max_length=MAX_LFNS_PER_LOOKUP)


def _list_of_objects(data, key):
    """data[key] as a list of objects, or a 400 saying what is wrong."""
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise InvalidInput(f"give {{{key!r}: [...]}} with a list of objects")
    bad = next((index for index, item in enumerate(items) if not isinstance(item, dict)), None)
    if bad is not None:
        raise InvalidInput(f"{key}[{bad}]: give an object")
    return items


def _valid(serializer_class, data):
    incoming = serializer_class(data=data)
    incoming.is_valid(raise_exception=True)
    return incoming.validated_data


# --- Pagination ----------------------------------------------------------------------------


class NamePagination(KeysetPagination):
    ordering = "name"


class LfnPagination(KeysetPagination):
    ordering = "lfn"


class DatasetNamePagination(KeysetPagination):
    ordering = "dataset_name"


STREAM_PARAMETER = OpenApiParameter(
    "stream",
    OpenApiTypes.BOOL,
    description="Answer NDJSON, one object per line, unpaged (or Accept: application/x-ndjson).",
)


# --- Datasets ------------------------------------------------------------------------------


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Datasets (DQ2 registerNewDataset, listDatasets, listFilesInDataset, versions, states, locations)."""

    lookup_field = "name"
    lookup_value_regex = NAME_IN_URL
    filterset_class = DatasetFilterSet
    pagination_class = NamePagination
    renderer_classes = [*viewsets.GenericViewSet.renderer_classes, NDJSONRenderer]

    def get_queryset(self):
        return selectors.dataset_list().select_related("owner")

    def get_object(self):
        return selectors.dataset_detail(name=self.kwargs["name"])

    def get_serializer_class(self):
        return DatasetDetailSerializer if self.action == "retrieve" else DatasetSerializer

    @extend_schema(request=RegisterDatasetsSerializer, responses={201: DatasetSerializer(many=True)})
    def create(self, request):
        """registerNewDataset, in bulk: every dataset of the call is registered, or none."""
        specs = _list_of_objects(request.data, "datasets")
        datasets = catalog.register_new_datasets(user=request.user, specs=specs)
        return Response({"datasets": DatasetSerializer(datasets, many=True).data}, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: DatasetSerializer})
    def destroy(self, request, name=None):
        """eraseDataset: hidden at once, purged with its contents after a grace period."""
        return Response(DatasetSerializer(catalog.erase_dataset(user=request.user, name=name)).data)

    @extend_schema(
        methods=["get"],
        parameters=[OpenApiParameter("version", int, description="Default: the latest."), STREAM_PARAMETER],
        responses={200: FileRowSerializer(many=True)},
    )
    @extend_schema(methods=["post"], request=FilesBodySerializer, responses={200: dict})
    @action(detail=True, methods=["get", "post"], pagination_class=LfnPagination)
    def files(self, request, name=None):
        """GET listFilesInDataset (a version; paged or streamed); POST addFilesToDataset (open datasets)."""
        if request.method == "POST":
            added = catalog.add_files_to_dataset(
                user=request.user, name=name, files=_list_of_objects(request.data, "files")
            )
            return Response({"added": added, "dataset": DatasetSerializer(self.get_object()).data})
        rows = selectors.file_rows_in_dataset(dataset=self.get_object(), version=_version(request))
        if wants_stream(request):
            return ndjson_response(rows)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(FileRowSerializer(page, many=True).data)

    @extend_schema(request=FilesBodySerializer, responses={201: DatasetSerializer})
    @action(detail=True, methods=["post"])
    def versions(self, request, name=None):
        """registerNewVersion: close the latest version and open the next, with optional new files."""
        files = _list_of_objects(request.data, "files") if request.data.get("files") is not None else []
        dataset = catalog.register_new_version(user=request.user, name=name, files=files)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: DatasetSerializer})
    @action(detail=True, methods=["post"])
    def close(self, request, name=None):
        """closeDataset: the latest version becomes immutable; a new version can follow."""
        return Response(DatasetSerializer(catalog.close_dataset(user=request.user, name=name)).data)

    @extend_schema(request=None, responses={200: DatasetSerializer})
    @action(detail=True, methods=["post"])
    def freeze(self, request, name=None):
        """freezeDataset: final; no new files and no new versions, ever."""
        return Response(DatasetSerializer(catalog.freeze_dataset(user=request.user, name=name)).data)

    @extend_schema(methods=["get"], responses={200: DatasetReplicaSerializer(many=True)})
    @extend_schema(methods=["post"], request=LocationSerializer, responses={201: DatasetReplicaSerializer})
    @action(detail=True, methods=["get", "post"])
    def replicas(self, request, name=None):
        """GET listDatasetReplicas (sites and completeness); POST registerDatasetLocations."""
        if request.method == "POST":
            location = _valid(LocationSerializer, request.data)
            replica = replicas.register_dataset_location(
                user=request.user, name=name, site_name=location["site"], complete=location["complete"]
            )
            row = selectors.dataset_replica_rows(DatasetReplica.objects.filter(pk=replica.pk)).get()
            return Response(replica_out(row), status=status.HTTP_201_CREATED)
        dataset_replicas = selectors.dataset_replicas(dataset=self.get_object())
        rows = selectors.dataset_replica_rows(dataset_replicas).order_by("site_name")
        return Response({"results": [replica_out(row) for row in rows]})

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["delete"], url_path=rf"replicas/(?P<site_name>{SITE_IN_URL})")
    def delete_replica(self, request, name=None, site_name=None):
        """deleteDatasetReplica: refused while a claim on it is live."""
        removed = replicas.delete_dataset_replica(user=request.user, name=name, site_name=site_name)
        return Response({"file_replicas_removed": removed})

    @extend_schema(request=ClaimRequestSerializer, responses={201: ClaimSerializer})
    @action(
        detail=True, methods=["post"], url_path=rf"replicas/(?P<site_name>{SITE_IN_URL})/claims",
        permission_classes=[IsAuthenticated],
    )  # fmt: skip
    def claims(self, request, name=None, site_name=None):
        """Claim a dataset replica for a while: it will not be deleted before the claim expires."""
        claim = _valid(ClaimRequestSerializer, request.data)
        created = replicas.add_claim(user=request.user, name=name, site_name=site_name, **claim)
        return Response(ClaimSerializer(created).data, status=status.HTTP_201_CREATED)


def _version(request):
    raw = request.query_params.get("version")
    if raw in (None, ""):
        return None
    if not raw.isdigit():
        raise InvalidInput(f"version must be a positive number, got {raw[:20]!r}")
    return int(raw)


# --- Containers ----------------------------------------------------------------------------


class ContainerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Containers: named collections of datasets (and containers), never cyclic."""

    lookup_field = "name"
    lookup_value_regex = NAME_IN_URL
    filterset_class = DatasetFilterSet
    pagination_class = NamePagination
    serializer_class = ContainerSerializer

    def get_queryset(self):
        return selectors.dataset_list(kind=DatasetKind.CONTAINER).select_related("owner")

    @extend_schema(request=MembersSerializer, responses={200: dict})
    @action(detail=True, methods=["post"])
    def members(self, request, name=None):
        """Add datasets (or containers) to the container."""
        names = _valid(MembersSerializer, request.data)["datasets"]
        return Response({"added": containers.add_to_container(user=request.user, name=name, members=names)})

    @extend_schema(request=MembersSerializer, responses={200: dict})
    @action(detail=True, methods=["post"], url_path="members/remove")
    def remove_members(self, request, name=None):
        """Remove datasets from the container (the datasets themselves stay)."""
        names = _valid(MembersSerializer, request.data)["datasets"]
        return Response({"removed": containers.remove_from_container(user=request.user, name=name, members=names)})


# --- Files and replicas --------------------------------------------------------------------


class FileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Files by LFN; a file's detail names its originating dataset and every dataset holding it."""

    lookup_field = "lfn"
    lookup_value_regex = NAME_IN_URL
    filterset_class = FileFilterSet
    pagination_class = LfnPagination

    def get_queryset(self):
        return File.objects.select_related("origin_dataset")

    def get_serializer_class(self):
        return FileDetailSerializer if self.action == "retrieve" else FileSerializer


class ReplicaViewSet(viewsets.GenericViewSet):
    """File replicas (the local replica catalogs) and datasets per site (the location catalog)."""

    pagination_class = DatasetNamePagination
    queryset = DatasetReplica.objects.none()  # the schema's model; every call builds its own rows
    renderer_classes = [*viewsets.GenericViewSet.renderer_classes, NDJSONRenderer]
    serializer_class = DatasetReplicaSerializer

    @extend_schema(request=RegisterReplicasSerializer, responses={200: dict})
    def create(self, request):
        """registerFileReplicas: files now stored at a site (known replicas are kept)."""
        site_name = request.data.get("site") if isinstance(request.data, dict) else None
        if not isinstance(site_name, str) or not site_name:
            raise InvalidInput("give the site the replicas are at: {'site': NAME, 'replicas': [...]}")
        items = _list_of_objects(request.data, "replicas")
        added = replicas.register_file_replicas(user=request.user, site_name=site_name, replicas=items)
        return Response({"added": added})

    @extend_schema(request=LookupSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def lookup(self, request):
        """listFileReplicas for many files at once: {lfn: [{site, pfn, state, storage_endpoint}]}."""
        lfns = _valid(LookupSerializer, request.data)["lfns"]
        found = {lfn: [] for lfn in lfns}
        for row in selectors.file_replica_rows(lfns=lfns):
            found[row["lfn"]].append(
                {"site": row["site_name"], "pfn": row["pfn"], "state": row["state"],
                 "storage_endpoint": row["storage_endpoint"]}
            )  # fmt: skip
        return Response({"replicas": found})

    @extend_schema(
        parameters=[
            OpenApiParameter("site", str, required=True),
            OpenApiParameter("complete", bool, description="Only complete (true) or incomplete (false) replicas."),
            STREAM_PARAMETER,
        ],
        responses={200: DatasetReplicaSerializer(many=True)},
    )
    @action(detail=False, methods=["get"])
    def datasets(self, request):
        """listDatasetsInSite: the datasets a site holds, with how complete each copy is."""
        site_name = request.query_params.get("site", "")
        if not Site.objects.filter(name=site_name).exists():
            raise InvalidInput(f"give an existing site: site={site_name!r} is unknown")
        complete = _boolean(request.query_params.get("complete"), "complete")
        rows = selectors.dataset_replica_rows(selectors.datasets_in_site(site_name=site_name, complete=complete))
        if wants_stream(request):
            return ndjson_response(rows.order_by("dataset_name"), replica_out)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([replica_out(row) for row in page])


def _boolean(raw, name):
    if raw in (None, ""):
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise InvalidInput(f"{name} must be true or false, got {raw[:20]!r}")
