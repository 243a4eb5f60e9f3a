import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * `helm lint --strict CHART` and `helm template CHART -f VALUES` for each values file, through
 * helm-java (Helm's Go code loaded with JNA), for CI machines that have no helm binary.
 *
 * Usage: java -cp '<class path>/*' HelmCheck.java [--out DIR] CHART_DIR VALUES_FILE...
 * Rendered as for Kubernetes $HELM_KUBE_VERSION (default v1.31.0).
 * With --out, each rendering is written to DIR/<values file name> for a person to read.
 * Exit code 0 when the lint and every rendering pass, 1 otherwise, 2 on bad arguments.
 */
public class HelmCheck {

  /** helm-java's default capabilities say Kubernetes 1.20, below the chart's kubeVersion. */
  private static final String KUBE_VERSION = System.getenv().getOrDefault("HELM_KUBE_VERSION", "v1.31.0");
  private static final Pattern KIND = Pattern.compile("(?m)^kind:\\s*(\\S+)");

  public static void main(String[] args) throws Exception {
    // The native library must come from the class path (scripts/ci/helm/pom.xml): never let
    // helm-java fall back to downloading it at run time, which CI's network does not allow.
    System.setProperty("com.marcnuri.jkube-helm.skipRemoteJar", "true");
    Path out = null;
    final List<String> rest = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--out") && i + 1 < args.length) out = Paths.get(args[++i]);
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
      try {
        final String manifests = new Helm(chart).template()
          .withName("ci")
          .withNamespace("ci")
          .withKubeVersion(KUBE_VERSION)
          .withValuesFile(file)
          .call();
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
    System.exit(failed ? 1 : 0);
  }
}
