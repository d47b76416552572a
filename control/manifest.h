// Manifests: multi-document YAML holding Services and the three policy kinds,
// and the scenario files that embed them.
//
// The control-side edge: every document is parsed into a typed model
// (classifier::Policy, lb::Service) or rejected with file:line diagnostics. A
// document with any error contributes nothing (never a partly applied
// policy). Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "classifier/model.h"
#include "classifier/policy_yaml.h"
#include "lb/service.h"

namespace meshgate::control {

using classifier::Diagnostic;
using classifier::ParseContext;

struct Manifests {
  std::vector<classifier::Policy> policies;
  std::vector<lb::Service> services;
};

// Parses `text` (one or more YAML documents, `---` separated; `kind: List`
// items are expanded). `line_offset` is added to every line (for YAML
// embedded in another file). Returns false when any diagnostic was added.
bool ParseManifests(std::string_view text, const ParseContext& ctx, Manifests& out,
                    std::vector<Diagnostic>& diags, int line_offset = 0);

// Splits a YAML stream at `---` / `...` lines: (document text, first line
// index of the document, 0-based).
std::vector<std::pair<std::string, int>> SplitDocuments(std::string_view text);

// One YAML block embedded in a scenario file (manifests[] and steps[].apply[]).
struct EmbeddedManifest {
  std::string cluster;
  std::string yaml;
  int line_offset = 0;  // file line of the block's first line, minus one
  std::string where;    // "manifests[0]", "steps[2].apply[0]"
};

// True when the document looks like a scenario file (scenario-format.md).
bool IsScenarioDocument(std::string_view text);

// The manifests a scenario embeds, with the cluster they apply to and the
// cluster options that shape parsing. Structural errors are diagnostics.
struct ScenarioManifests {
  std::vector<EmbeddedManifest> blocks;
  // cluster name -> policyDefaultLocalCluster for that cluster
  std::vector<std::pair<std::string, bool>> clusters;
};
bool ExtractScenarioManifests(std::string_view text, const std::string& file,
                              ScenarioManifests& out, std::vector<Diagnostic>& diags);

// `meshgate policy check`: validates every file (manifests or scenarios).
// Prints nothing; returns the diagnostics and counts.
struct CheckResult {
  int files = 0, policies = 0, services = 0;
  std::vector<Diagnostic> diags;
};
CheckResult CheckFiles(const std::vector<std::string>& files, const ParseContext& base);

}  // namespace meshgate::control
