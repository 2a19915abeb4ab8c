"""Dataset browser pages."""

from django.urls import path, register_converter

from . import flow_pages, views


class DatasetNameConverter:
    """A dataset name as in the catalog (no slash), optionally with the trailing slash DQ2 users give containers."""

    regex = r"[^/]+/?"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(DatasetNameConverter, "dsname")

urlpatterns = [
    path("datasets/", views.dataset_list, name="datasets-page"),
    path("datasets/<dsname:name>/", views.dataset_detail, name="dataset-page"),
    path("files/<str:lfn>/", views.file_detail, name="file-page"),
    path("blocks/", views.block_list, name="blocks-page"),
    path("subscriptions/", flow_pages.subscription_list, name="subscriptions-page"),
    path("subscriptions/<int:pk>/", flow_pages.subscription_detail, name="subscription-page"),
    path("transfers/", flow_pages.transfer_list, name="transfers-page"),
    path("transfers/channels/", flow_pages.channel_list, name="channels-page"),
]
