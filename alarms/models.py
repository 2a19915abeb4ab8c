"""Notifications (email) of job events; alarm records and rules arrive with the alarms issue."""

from django.conf import settings
from django.db import models


class NotificationPreference(models.Model):
    """What a user wants to be mailed about. Opt-in: nothing is sent until a box is ticked."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    email = models.EmailField(blank=True, help_text="Where to send; empty = the account's email.")
    on_start = models.BooleanField(default=False, help_text="A job of mine started running.")
    on_finish = models.BooleanField(default=False, help_text="A job of mine finished.")
    on_failure = models.BooleanField(default=False, help_text="A job of mine failed.")

    def __str__(self):
        return f"notifications of {self.user}"

    @property
    def address(self):
        return self.email or self.user.email


class SentNotification(models.Model):
    """One mail sent: a digest of a user's job events since the previous one."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    address = models.EmailField()
    subject = models.CharField(max_length=200)
    events = models.PositiveIntegerField(help_text="Job events summarised in this mail.")
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at"]
        indexes = [models.Index(fields=["user", "-sent_at"], name="sentnotification_user_time")]

    def __str__(self):
        return f"{self.subject} to {self.address}"
