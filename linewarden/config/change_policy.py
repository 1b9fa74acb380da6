"""A contract's `[change_policy]` (docs/changes-and-remote-access.md): staging assets, the production assets
each stands for, and how long a version must run on staging before it may reach production."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from linewarden.config.pydantic_base import ConfigId, PositiveDuration, StrictModel


class StagingPair(StrictModel):
    staging: ConfigId
    production: list[ConfigId] = Field(min_length=1)


class ChangePolicy(StrictModel):
    min_staging: PositiveDuration = Field(
        default=timedelta(days=7), description="how long a version runs on staging before production"
    )
    staging: list[StagingPair] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_staging_each(self) -> ChangePolicy:
        seen: dict[str, str] = {}
        stagings = {p.staging for p in self.staging}
        for pair in self.staging:
            for asset in pair.production:
                if asset in stagings:
                    raise ValueError(f"change_policy: asset {asset!r} is both a staging and a production asset")
                if asset in seen:
                    raise ValueError(
                        f"change_policy: production asset {asset!r} has two staging assets"
                        f" ({seen[asset]!r} and {pair.staging!r})"
                    )
                seen[asset] = pair.staging
        return self

    def staging_of(self) -> dict[str, str]:
        """Production asset -> its staging asset."""
        return {asset: pair.staging for pair in self.staging for asset in pair.production}
