"""YAML configuration → frozen, validated pydantic models, one per stage.

Everything is validated before Spark starts: an unknown key, a wrong type or a missing required
field raises `ConfigError` naming the file and the dotted key. `--set a.b=c` overrides are applied
to the YAML tree before validation, so they are checked exactly like the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)

from sparkprep.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SparkConfig(_Section):
    """Session settings used when sparkprep starts Spark itself (ignored under spark-submit,
    which owns master and resources)."""

    master: str = Field("local[*]", description="Spark master URL for runs outside spark-submit.")
    driver_memory: str = Field("2g", description="spark.driver.memory for local runs.")
    shuffle_partitions: int = Field(16, ge=1, description="spark.sql.shuffle.partitions (the least: see "
                                    "shuffle_partition_bytes); AQE coalesces.")
    shuffle_partition_bytes: int | None = Field(
        128 << 20, ge=1 << 20, description="A prepare run raises spark.sql.shuffle.partitions to its input's "
        "size / this when that is more than shuffle_partitions, so a reduce task's share of a shuffle stays "
        "about this size at any input size (a fixed width sorted 11x the spill for 5x the data); null: fixed. "
        "Ignored when spark.conf sets spark.sql.shuffle.partitions.")
    conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark conf, applied last.")
    verbose: bool = Field(False, description="Everything Spark, Ivy and the JVM print (`--verbose`); by default "
                          "the console keeps what a user can act on (sparkprep/log4j2.properties).")


class DefectRates(_Section):
    """Fractions of generated rows that carry each real-world defect."""

    exact_duplicates: float = Field(0.03, ge=0, le=0.5)
    near_duplicate_texts: float = Field(0.02, ge=0, le=0.5, description="Text of an earlier row "
                                        "with one character changed (its other columns are its own).")
    key_updates: float = Field(0.01, ge=0, le=0.5, description="A newer version of an earlier id: "
                               "later event_time, fresh features.")
    label_conflicts: float = Field(0.003, ge=0, le=0.5, description="An earlier row's features "
                                   "under a new id with a different label (label noise).")
    nulls: float = Field(0.01, ge=0, le=1, description="Per cell, numeric and categorical features.")
    missing_labels: float = Field(0.002, ge=0, le=1)
    outliers: float = Field(0.005, ge=0, le=1, description="Per numeric cell, value x 1e6.")
    unparsable: float = Field(0.004, ge=0, le=1, description="Text formats only: 'n/a' in a number.")
    malformed_lines: float = Field(0.003, ge=0, le=1, description="Text formats only: cut lines.")


class GenerateConfig(_Section):
    """The synthetic dataset written by `sparkprep generate`."""

    path: str = Field(description="Where to write the generated files (any Hadoop URI).")
    rows: int = Field(20_000, ge=1)
    files: int = Field(4, ge=1, description="Number of output files (= Spark partitions).")
    format: Literal["csv", "json", "parquet"] = "csv"
    seed: int = 7
    class_ratios: list[float] = Field(default_factory=lambda: [0.9, 0.09, 0.01])
    groups: int = Field(500, ge=1, description="Distinct values of the group column.")
    defects: DefectRates = Field(default_factory=DefectRates)

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> "GenerateConfig":
        if len(self.class_ratios) < 2 or abs(sum(self.class_ratios) - 1.0) > 1e-9:
            raise ValueError("class_ratios needs at least two values that sum to 1")
        return self


class InputConfig(_Section):
    """What `prepare` reads."""

    paths: list[str] = Field(min_length=1, description="Files or directories, any Hadoop URI.")
    format: Literal["csv", "json", "parquet", "orc", "delta"]
    schema_: dict[str, str] | None = Field(
        None,
        alias="schema",
        description="Column -> Spark SQL type. CSV with a header: matched to each file's header by name "
        "(the order here never matters); without a header (options.header false, Spark's default), in file "
        "order. Text formats are read as strings and coerced to these types, so a bad value is quarantined "
        "naming its column.",
    )
    options: dict[str, str] = Field(default_factory=dict, description="Spark reader options. CSV defaults "
                                    "to RFC 4180 (quote and escape \", multiLine, lineSep \\n); these win.")
    extra_columns: Literal["error", "ignore"] = Field(
        "error", description="CSV with a header: a header column that input.schema lacks stops the run "
        "(error) or is not read (ignore).")
    on_unreadable_file: Literal["fail", "quarantine"] = Field(
        "fail", description="A file that cannot be read at all (corrupt, truncated archive): fail "
        "naming it, or skip it and list it in quarantine/ and the manifest (reason unreadable_file).")


class ColumnsConfig(_Section):
    """Roles of the input columns."""

    label: str
    classes: list[str] | None = Field(
        None, description="Label values in label_index order; default: sorted distinct labels. "
        "With a list, any other label is quarantined as unknown_label.")
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    array: list[str] = Field(default_factory=list, description="array<double>; in text input a "
                             "';' or ',' separated string, optionally in [brackets].")
    text: list[str] = Field(default_factory=list)
    rename: dict[str, str] = Field(default_factory=dict, description="Input name -> new name, "
                                   "e.g. to move an input column off a reserved name.")
    min_class_rows: int | None = Field(
        None, ge=1, description="A class with fewer cross-validation originals than this (after dedup and "
        "the holdout; default: split.k, below which some fold has none of it) is rare: see rare_classes.")
    rare_classes: Literal["stop", "quarantine"] = Field(
        "stop", description="stop: a rare class stops the run before anything is written, naming it (a stray "
        "label value, a typo, a shifted column); quarantine: its rows go to quarantine/ as rare_label.")


class ColumnRule(_Section):
    """Cleaning rules for one column, checked after type coercion; a failing row is quarantined
    with the rule's reason code. (Statistical outlier clipping is fitted, so it belongs to the
    normalise stage, not here.)"""

    min: float | None = Field(None, description="Smallest allowed value (inclusive): out_of_range.")
    max: float | None = Field(None, description="Largest allowed value (inclusive): out_of_range.")
    allowed: list[str] | None = Field(None, description="Allowed values, compared after `normalise`: "
                                      "unexpected_category.")
    nulls: Literal["keep", "reject"] = Field("keep", description="reject: a null is missing_value. keep: "
                                             "the null stays (imputation is fitted in the normalise stage).")
    normalise: list[Literal["trim", "nfc", "lower", "casefold"]] = Field(
        default_factory=list, description="String normalisation, in order, before rules and dedup: trim "
        "whitespace, Unicode NFC, lower case, or full Unicode case folding.")
    non_finite: Literal["keep", "reject"] | None = Field(
        None, description="This double/float column's NaN and ±Infinity values: overrides clean.non_finite.")

    @field_validator("allowed", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value


class CleanConfig(_Section):
    rules: dict[str, ColumnRule] = Field(default_factory=dict, description="Column -> its rules.")
    rules_from_schema: str | None = Field(
        None, description="A schema YAML (`sparkprep infer-schema`): its error-severity range, domain "
        "and zero-null rules become cleaning rules (rows failing them are quarantined); `rules` "
        "entries override a column's derived rule.")
    non_finite: Literal["keep", "reject"] = Field(
        "keep", description="NaN and ±Infinity in double/float columns, as literals in text (nan, inf, "
        "infinity, +inf, -Infinity, any case: what Spark reads as such) or as values in typed input. keep: they "
        "stay (normalise treats them as missing). reject: out_of_range. A number too large for its type "
        "(1e309 in a double, 1e39 in a float) is not a literal: it is always out_of_range, never infinity.")


class NearDupConfig(_Section):
    """Near-duplicate texts: MinHash signatures, LSH banding, exact Jaccard check, components."""

    column: str = Field(description="The text column compared.")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity of shingle sets.")
    shingle: Literal["char", "word"] = "char"
    shingle_size: int = Field(5, ge=1, description="Characters (or words) per shingle.")
    bands: int = Field(25, ge=1)
    rows_per_band: int = Field(8, ge=1, description="bands x rows_per_band MinHash functions.")
    max_bucket: int = Field(200, ge=2, description="An LSH bucket larger than this links each member "
                            "to the bucket's first row instead of comparing all pairs.")
    keep: Literal["representative", "all"] = Field(
        "all", description="representative: keep the smallest row_id of each cluster (the rest count "
        "as duplicates). all: keep every row; `dup_cluster` keeps a cluster in one fold.")
    seed: int = 1


class DedupConfig(_Section):
    exact: bool = Field(True, description="Drop rows whose canonical content is identical.")
    key: list[str] = Field(default_factory=list, description="Dedup by these key columns: one row "
                           "per key survives (see keep).")
    keep: Literal["latest", "first"] = Field("latest", description="latest: the largest order_by "
                                             "value; first: the smallest. Ties: smallest row_id.")
    order_by: str | None = Field(None, description="Column that orders rows of one key; row_id when unset.")
    conflicts: Literal["keep_all", "keep_majority", "drop_all"] = Field(
        "keep_all", description="Rows with identical features and different labels: keep_all (counted "
        "and grouped into one fold), keep_majority (others quarantined), drop_all (all quarantined).")
    near: NearDupConfig | None = None

    @model_validator(mode="after")
    def _order_needs_key(self) -> "DedupConfig":
        if self.order_by and not self.key:
            raise ValueError("dedup.order_by needs dedup.key")
        return self


class SplitConfig(_Section):
    k: int = Field(5, ge=2, description="Number of cross-validation folds.")
    holdout_fraction: float = Field(0.1, ge=0, lt=1, description="Per class, by hash rank; fold = -1. "
                                    "Set 0 when holdout_column decides the holdout.")
    holdout_column: str | None = Field(None, description="A column that decides the holdout instead: "
                                       "with holdout_values or holdout_from.")
    holdout_values: list[str] = Field(default_factory=list, description="Holdout = rows whose "
                                      "holdout_column (as text) is one of these.")
    holdout_from: str | None = Field(None, description="Holdout = rows whose holdout_column is >= this "
                                     "value, e.g. a time cut '2024-10-01' on a timestamp column.")
    seed: int = 42
    group_column: str | None = Field(None, description="Rows sharing a value of this column (a user, "
                                     "a patient, a session) always land in the same fold.")

    @field_validator("holdout_from", "holdout_values", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        # YAML reads 2024-10-01 as a date and 10 as an int; the rule compares in the column's type.
        if isinstance(value, list):
            return [str(v) for v in value]
        return None if value is None else str(value)

    @model_validator(mode="after")
    def _one_holdout_rule(self) -> "SplitConfig":
        by_column = self.holdout_column is not None
        if by_column and bool(self.holdout_values) == (self.holdout_from is not None):
            raise ValueError("with holdout_column, set exactly one of holdout_values and holdout_from")
        if not by_column and (self.holdout_values or self.holdout_from is not None):
            raise ValueError("holdout_values and holdout_from need holdout_column")
        if by_column and self.holdout_fraction:
            raise ValueError("choose one holdout rule: holdout_fraction or holdout_column (set holdout_fraction: 0)")
        return self


class RebalanceConfig(_Section):
    """Resampling of the training portions, after the split (the holdout is never resampled)."""

    method: Literal["none", "oversample", "undersample"] = Field(
        "none", description="oversample: copies of minority rows; undersample: training skips "
        "majority originals (in_train = false), validation and test still see them.")
    target: float = Field(1.0, gt=0, le=1, description="oversample: each class up to target x the "
                          "majority count of its fold; undersample: each class down to the minority "
                          "count / target; 1.0 balances every training portion exactly.")
    copies: Literal["rows", "count"] = Field(
        "rows", description="oversample: how the copies are written. rows: each copy as a row "
        "(replica 1..n), as any Parquet reader sees them; count: no copy rows, each original carries "
        "its number of copies in the `copies` column, and sparkprep's loaders expand it into the same "
        "training rows (replica 0..copies), so the output holds only the originals.")

    @model_validator(mode="after")
    def _count_needs_copies(self) -> "RebalanceConfig":
        if self.copies == "count" and self.method != "oversample":
            raise ValueError(f"copies: count counts oversampled copies, but method is {self.method}: "
                             f"set method: oversample, or leave copies at rows")
        return self


class NumericTransform(_Section):
    """How one numeric column is transformed: missing → fill, [log1p] → [clip] → (v - center) / scale.

    Every statistic is fitted per fold on that fold's training originals (and on all non-holdout
    originals for the final model), over the present values: null, NaN and ±inf count as missing.
    "standard" is scikit-learn's StandardScaler(): centred, population std (Spark ML's
    StandardScaler differs: sample std, and no centring by default); a constant column gets scale 1.
    """

    method: Literal["standard", "minmax", "robust", "none"] = Field(
        "standard", description="standard: mean/population std; minmax: to [0, 1] over the fitted "
        "min/max (the clip bounds with clip); robust: median/IQR (q75 - q25); none: no scaling.")
    log1p: bool = Field(False, description="sign(x)·log1p(|x|) first (log1p for x >= 0, defined for "
                        "every real x); statistics are then fitted on the log scale.")
    clip: tuple[float, float] | None = Field(
        None, description="Clip at these fitted quantiles, e.g. [0.01, 0.99], before scaling.")
    impute: Literal["mean", "median", "constant"] = Field(
        "mean", description="Fill for null/NaN/±inf: the fitted mean or median (on the log scale "
        "with log1p), or fill_value.")
    fill_value: float = Field(0.0, description="The fill with impute: constant (raw scale).")

    @model_validator(mode="after")
    def _clip_keeps_the_statistics(self) -> "NumericTransform":
        if self.clip is None:
            return self
        lo, hi = self.clip
        if not 0 <= lo < hi <= 1:
            raise ValueError("clip needs two quantiles 0 <= low < high <= 1")
        # Statistics are fitted in the same single pass as the clip bounds, so they must be ones
        # that clipping does not change (or that the bounds give): the mean and std of clipped
        # values would need each fold's own bounds applied to every row, a second pass per fold.
        if self.method == "standard":
            raise ValueError("clip with method standard needs a second pass per fold: use robust or minmax with clip")
        if self.method == "robust" and not (lo <= 0.25 and hi >= 0.75):
            raise ValueError("clip with method robust needs low <= 0.25 and high >= 0.75 (the IQR must survive clipping)")
        if self.impute == "mean":
            raise ValueError("clip with impute mean needs a second pass per fold: use impute median or constant")
        return self


class CategoricalTransform(_Section):
    """A string column → index (0 = the unknown bucket: null, unseen or cut by the caps), or one-hot."""

    encoding: Literal["index", "onehot"] = "index"
    min_count: int = Field(1, ge=1, description="Values seen fewer times in the training rows go to the unknown bucket.")
    max_size: int | None = Field(None, ge=1, description="Keep at most this many values, the most frequent "
                                 "(ties by value); the rest go to the unknown bucket.")


class ArrayTransform(_Section):
    """An array<double> column (fixed length): missing elements → center, then (v - center) / scale."""

    method: Literal["standard", "minmax", "none"] = "standard"
    per_element: bool = Field(True, description="Statistics per position; false: one over all elements.")


class NormaliseConfig(_Section):
    """Transforms fitted per fold on training originals only; written to transform-<run_id>.json (named by the manifest)."""

    numeric: NumericTransform = Field(default_factory=NumericTransform, description="Default for numeric columns.")
    categorical: CategoricalTransform = Field(default_factory=CategoricalTransform,
                                              description="Default for categorical columns.")
    array: ArrayTransform = Field(default_factory=ArrayTransform, description="Default for array columns.")
    numeric_columns: dict[str, NumericTransform] = Field(
        default_factory=dict, description="Per column: replaces the default (unset keys take the "
        "model's defaults, not those of numeric:).")
    categorical_columns: dict[str, CategoricalTransform] = Field(default_factory=dict, description="Per-column overrides.")
    array_columns: dict[str, ArrayTransform] = Field(default_factory=dict, description="Per-column overrides.")
    materialise: bool = Field(False, description="Also write normalised/: every row with its feature "
                              "columns transformed in Spark with the final parameters (partitioned by "
                              "fold), for consumers that read with Spark. Trainers apply fold k's on the fly.")
    sketch_sample_rows: int | None = Field(
        1_000_000, ge=10_000, description="Quantiles (median, IQR, clip) are exact over a "
        "deterministic sample (by a hash of row_id) of a column's values, so that its smallest "
        "training set gives about this many, when it has more; the sample is collected to the "
        "driver (16 bytes a value and column). Its rank error is at most sqrt(ln(200) / (2 n)) at 99% "
        "(n: the set's sampled values; 0.16% at 1M). null: every value.")


class OutputConfig(_Section):
    path: str = Field(description="Output root (any Hadoop URI); replaced atomically by a rerun.")
    format: Literal["parquet", "delta"] = "parquet"
    max_rows_per_file: int = Field(500_000, ge=1000)
    dictionary_page_bytes: int = Field(
        64 << 10, ge=1024, description="Parquet's dictionary limit per column chunk (output and scratch copy): "
        "past it a column falls back to plain encoding. parquet-mr's default, 1 MB, makes a column of nearly "
        "unique values (doubles, embeddings, text, hashes) build and throw away a dictionary of up to 131,072 "
        "doubles per row group; at 64 KB prepare's output (1.2 GB input) was written 28-33% faster and 5% smaller. Columns with fewer "
        "distinct values (below 8,192 doubles, or 64 KB of strings, per row group) keep their dictionary.")


class ValidationConfig(_Section):
    """`prepare` profiles and validates its input before writing anything (docs/stats.md)."""

    schema_path: str = Field(alias="schema", description="Schema YAML (from `sparkprep infer-schema`, edited).")
    baseline: str | None = Field(None, description="stats.json of a previous batch: drift distances and rules.")
    environment: Literal["TRAINING", "SERVING"] = "TRAINING"
    stop_on: Literal["error", "never"] = Field("error", description="'error': a blocking anomaly stops "
                                               "the run before any output is written; 'never': record only.")


class Config(_Section):
    spark: SparkConfig = Field(default_factory=SparkConfig)
    generate: GenerateConfig | None = None
    input: InputConfig | None = None
    columns: ColumnsConfig | None = None
    clean: CleanConfig = Field(default_factory=CleanConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    rebalance: RebalanceConfig = Field(default_factory=RebalanceConfig)
    output: OutputConfig | None = None
    normalise: NormaliseConfig = Field(default_factory=NormaliseConfig)
    validation: ValidationConfig | None = None
    _source: str = PrivateAttr("<memory>")

    @property
    def source(self) -> str:
        """The file this config was read from (for error messages)."""
        return self._source

    def require(self, *sections: str) -> None:
        """Raise ConfigError unless every named section is present (a command needs them)."""
        missing = [s for s in sections if getattr(self, s) is None]
        if missing:
            raise ConfigError(f"{self.source}: missing required section(s): {', '.join(missing)}")

    def sha256(self) -> str:
        """Hash of the canonical JSON of the resolved config (recorded in the manifest)."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply `a.b=c` overrides and validate.

    >>> cfg = load_config("conf/demo.yaml", ["split.k=3"])

    Args:
        path: the YAML file.
        overrides: `a.b=c` settings applied over it.
    """
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    for item in overrides or []:
        _apply_override(tree, item, path)
    try:
        config = Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    config._source = str(path)
    return config


#: Mappings whose keys are free-form (Spark conf names contain dots; values stay strings).
_FREE_FORM = {"conf", "options", "schema", "rename"}


def _apply_override(tree: dict[str, Any], item: str, path: Path) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. split.k=3")
    node, parts = tree, key.split(".")
    while len(parts) > 1:
        part = parts.pop(0)
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: {part!r} in {path} is not a section")
        node = child
        if part in _FREE_FORM:
            node[".".join(parts)] = raw
            return
    node[parts[0]] = yaml.safe_load(raw) if raw else ""


def _describe(exc: ValidationError, path: Path) -> str:
    lines = [f"{path}: invalid configuration:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        elif err["type"] == "missing":
            lines.append(f"  {key}: required field is missing")
        else:
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)
