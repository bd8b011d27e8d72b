"""Settings: the one reader of KIZUNA_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Every knob of a kizuna run. Environment variables are KIZUNA_<FIELD>, e.g. KIZUNA_WAREHOUSE."""

    model_config = SettingsConfigDict(env_prefix="KIZUNA_", env_file=".env", extra="ignore")

    project_dir: Path = Field(PROJECT_DIR, description="Checkout holding dbt_project/, templates/, campaigns/.")
    var_dir: Path = Field(Path("var"), description="Where runs write: warehouse, outbox, previews, tmp.")
    source_dir: Path = Field(Path("var/demo-data"), description="Directory of CSV/XLSX files (the source contract).")
    warehouse: Path = Field(Path("var/warehouse.duckdb"), description="The DuckDB file.")
    outbox_dir: Path = Field(Path("var/outbox"), description="The local outbox: one .eml per message.")
    timezone: str = Field("Asia/Tokyo", description="Business time zone: naive timestamps and as-of dates.")

    email_backend: Literal["outbox"] = "outbox"
    sendgrid_api_key: SecretStr | None = None

    sender_name: str = "株式会社キズナ デモ (Kizuna Demo K.K.)"
    sender_email: str = "success@example.co.jp"
    sender_postal_address: str = "〒100-0005 東京都千代田区丸の内1-1-1"
    sender_contact: str = "support@example.co.jp / 03-0000-0000"
    unsubscribe_url: str = "https://example.co.jp/unsubscribe?c={contact_token}"
    unsubscribe_secret: SecretStr = Field(
        SecretStr("kizuna-demo-only-secret"),
        description="Signs unsubscribe tokens so nobody can unsubscribe someone else; set your own in production.",
    )

    @field_validator("sender_name", "sender_email", "sender_postal_address", "sender_contact")
    @classmethod
    def _identity_present(cls, value: str) -> str:
        # Japan's Act on Specified Electronic Mail requires the sender's identity in every advertising email.
        if not value.strip():
            raise ValueError("must not be empty: every email shows the sender's name, address and contact")
        return value

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_dir / "dbt_project"

    @property
    def templates_dir(self) -> Path:
        return self.project_dir / "templates"

    @property
    def campaigns_dir(self) -> Path:
        return self.project_dir / "campaigns"

    @property
    def expectations_dir(self) -> Path:
        return self.project_dir / "expectations"

    @property
    def tmp_dir(self) -> Path:
        return self.var_dir / "tmp"
