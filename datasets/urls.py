"""Dataset browser pages."""

urlpatterns = []
