import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * `helm lint --strict CHART` and, for each values file, `helm lint --strict CHART -f VALUES` and
 * `helm template CHART -f VALUES`, through helm-java (Helm's Go code loaded with JNA), for CI
 * machines that have no helm binary. Each --must-fail values file must make the rendering fail,
 * with the message its first line names (`# fails with: <text>`): the chart's own checks (its
 * `fail` calls) are tested to fail, not only to pass.
 *
 * Usage: java -cp '<class path>/*' HelmCheck.java [--out DIR] [--must-fail VALUES]... CHART_DIR VALUES_FILE...
 * Rendered as for Kubernetes $HELM_KUBE_VERSION (default v1.31.0).
 * With --out, each rendering is written to DIR/<values file name> for a person to read.
 * Exit code 0 when every lint and rendering passes (and every --must-fail file fails as it
 * says), 1 otherwise, 2 on bad arguments.
 */
public class HelmCheck {

  /** helm-java's default capabilities say Kubernetes 1.20, below the chart's kubeVersion. */
  private static final String KUBE_VERSION = System.getenv().getOrDefault("HELM_KUBE_VERSION", "v1.31.0");
  private static final Pattern KIND = Pattern.compile("(?m)^kind:\\s*(\\S+)");
  private static final Pattern FAILS_WITH = Pattern.compile("^#\\s*fails with:\\s*(.+?)\\s*$");
  /** A template added to a copy of the chart that prints the values Helm merged, base64-encoded. */
  private static final String MERGED_VALUES_TEMPLATE = "zz-helm-check-merged-values.yaml";
  private static final Pattern MERGED_VALUES = Pattern.compile("(?m)^# helm-check-merged-values: (\\S*)$");

  public static void main(String[] args) throws Exception {
    // The native library must come from the class path (scripts/ci/helm/pom.xml): never let
    // helm-java fall back to downloading it at run time, which CI's network does not allow.
    System.setProperty("com.marcnuri.jkube-helm.skipRemoteJar", "true");
    Path out = null;
    final List<String> rest = new ArrayList<>();
    final List<Path> mustFail = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--out") && i + 1 < args.length) out = Paths.get(args[++i]);
      else if (args[i].equals("--must-fail") && i + 1 < args.length) mustFail.add(Paths.get(args[++i]).toAbsolutePath().normalize());
      else rest.add(args[i]);
    }
    if (rest.isEmpty()) {
      System.err.println("usage: HelmCheck.java [--out DIR] CHART_DIR VALUES_FILE...");
      System.exit(2);
    }
    final Path chart = Paths.get(rest.get(0)).toAbsolutePath().normalize();
    if (!Files.isRegularFile(chart.resolve("Chart.yaml"))) {
      System.err.println(chart + ": no Chart.yaml");
      System.exit(2);
    }
    boolean failed = false;

    // helm lint --strict: warnings fail too (helm-java's lint has no --values, so default values).
    try {
      final LintResult lint = new Helm(chart).lint().strict().call();
      for (String message : lint.getMessages()) System.out.println("  lint: " + message);
      System.out.println("helm lint --strict " + chart.getFileName() + ": " + (lint.isFailed() ? "FAILED" : "ok"));
      failed |= lint.isFailed();
    } catch (RuntimeException exception) {
      System.out.println("helm lint --strict " + chart.getFileName() + ": FAILED: " + exception.getMessage());
      failed = true;
    }

    for (String values : rest.subList(1, rest.size())) {
      final Path file = Paths.get(values).toAbsolutePath().normalize();
      final String label = "helm template -f " + chart.getParent().relativize(file);
      failed |= !lintWithValues(chart, file);
      try {
        final String manifests = template(chart, file);
        final List<String> kinds = new ArrayList<>();
        final Matcher kind = KIND.matcher(manifests);
        while (kind.find()) kinds.add(kind.group(1));
        if (kinds.isEmpty()) {
          System.out.println(label + ": FAILED: rendered no manifest");
          failed = true;
          continue;
        }
        System.out.println(label + ": ok, " + kinds.size() + " manifests " + kinds);
        if (out != null) {
          Files.createDirectories(out);
          Files.writeString(out.resolve(file.getFileName()), manifests);
        }
      } catch (RuntimeException exception) {
        System.out.println(label + ": FAILED: " + exception.getMessage());
        failed = true;
      }
    }

    for (Path file : mustFail) {
      final String label = "helm template -f " + Paths.get("").toAbsolutePath().relativize(file) + " (must fail)";
      final String expected = Files.readAllLines(file).stream().findFirst()
        .map(FAILS_WITH::matcher).filter(Matcher::matches).map(m -> m.group(1)).orElse(null);
      if (expected == null) {
        System.out.println(label + ": FAILED: its first line must be `# fails with: <part of the message>`");
        failed = true;
        continue;
      }
      try {
        template(chart, file);
        System.out.println(label + ": FAILED: it rendered; expected a failure with \"" + expected + "\"");
        failed = true;
      } catch (RuntimeException exception) {
        final String message = String.valueOf(exception.getMessage());
        if (message.contains(expected)) {
          System.out.println(label + ": ok, failed with \"" + expected + "\"");
        } else {
          System.out.println(label + ": FAILED: failed, but not with \"" + expected + "\": " + message);
          failed = true;
        }
      }
    }
    System.exit(failed ? 1 : 0);
  }

  private static String template(Path chart, Path values) {
    return new Helm(chart).template()
      .withName("ci")
      .withNamespace("ci")
      .withKubeVersion(KUBE_VERSION)
      .withValuesFile(values)
      .call();
  }

  /**
   * `helm lint --strict CHART -f VALUES`. helm-java's lint takes no values file, so Helm merges
   * them (a copy of the chart with one more template that prints .Values), and a second copy with
   * the merged values as its values.yaml is linted. True when the lint passed.
   */
  private static boolean lintWithValues(Path chart, Path values) throws IOException {
    final String label = "helm lint --strict -f " + chart.getParent().relativize(values);
    final Path work = Files.createTempDirectory("helm-check-");
    try {
      final Path merging = copyChart(chart, work.resolve("merging").resolve(chart.getFileName()));
      Files.writeString(merging.resolve("templates").resolve(MERGED_VALUES_TEMPLATE),
        "# helm-check-merged-values: {{ toYaml .Values | b64enc }}\n");
      final Matcher merged = MERGED_VALUES.matcher(template(merging, values));
      if (!merged.find()) {
        System.out.println(label + ": FAILED: the merged values were not printed");
        return false;
      }
      final Path linted = copyChart(chart, work.resolve("linted").resolve(chart.getFileName()));
      Files.writeString(linted.resolve("values.yaml"),
        new String(Base64.getDecoder().decode(merged.group(1)), StandardCharsets.UTF_8));
      final LintResult lint = new Helm(linted).lint().strict().call();
      for (String message : lint.getMessages()) System.out.println("  lint: " + message);
      System.out.println(label + ": " + (lint.isFailed() ? "FAILED" : "ok"));
      return !lint.isFailed();
    } catch (RuntimeException exception) {
      System.out.println(label + ": FAILED: " + exception.getMessage());
      return false;
    } finally {
      try (Stream<Path> paths = Files.walk(work)) {
        paths.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
      }
    }
  }

  private static Path copyChart(Path chart, Path target) throws IOException {
    try (Stream<Path> paths = Files.walk(chart)) {
      paths.forEach(path -> {
        try {
          final Path copy = target.resolve(chart.relativize(path).toString());
          if (Files.isDirectory(path)) Files.createDirectories(copy);
          else Files.copy(path, copy);
        } catch (IOException exception) {
          throw new UncheckedIOException(exception);
        }
      });
    }
    return target;
  }
}
