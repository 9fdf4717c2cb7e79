"""Sign-in: email and password against Firebase Auth (or its emulator); errors in plain words."""

from __future__ import annotations

from collections.abc import Callable

import flet as ft

from views.common import text_field


class SignInView:
    def __init__(self, on_sign_in: Callable[[str, str], object], *, provider: str = "Firebase Auth") -> None:
        self.email = text_field(label="Email", keyboard_type=ft.KeyboardType.EMAIL, autofocus=True, width=320,
                                  autofill_hints=[ft.AutofillHint.EMAIL])
        self.password = text_field(label="Password", password=True, can_reveal_password=True, width=320,
                                     on_submit=lambda _e: self._submit())
        self.error = ft.Text("", color=ft.Colors.ERROR, visible=False, width=320)
        self.progress = ft.ProgressRing(width=18, height=18, stroke_width=2, visible=False)
        self.submit = ft.FilledButton("Sign in", on_click=lambda _e: self._submit(), width=320)
        self._on_sign_in = on_sign_in
        card = ft.Container(
            ft.Column(
                [
                    ft.Text("Skeet", size=32, weight=ft.FontWeight.BOLD),
                    ft.Text(f"Sign in with your account ({provider})", size=13, color=ft.Colors.ON_SURFACE_VARIANT),
                    self.email, self.password, self.error,
                    ft.Row([self.submit, self.progress], tight=True),
                ],
                horizontal_alignment=ft.CrossAxisAlignment.CENTER, spacing=14, tight=True,
            ),
            padding=ft.Padding.all(28), border_radius=ft.BorderRadius.all(16), bgcolor=ft.Colors.SURFACE_CONTAINER,
        )
        self.control = ft.Semantics(identifier="sign-in", container=True,
                                    content=ft.Container(card, alignment=ft.Alignment.CENTER, expand=True))

    def _submit(self) -> None:
        if self.submit.disabled:
            return
        email, password = (self.email.value or "").strip(), self.password.value or ""
        if "@" not in email or not password:
            self.render(error="Enter your email and password")
            return
        self._on_sign_in(email, password)

    def render(self, *, error: str | None = None, pending: bool = False) -> None:
        self.error.value, self.error.visible = error or "", bool(error)
        self.progress.visible = self.submit.disabled = pending
